//! Plain TCP as a [`Transport`]: the owned-buffer helpers of
//! [`crate::io`] on a monoio `TcpStream`.

use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;
use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use super::{ReadWait, Transport};
use crate::deadline::Deadlines;
use crate::io::{self as owned, ReadError};

impl Transport for TcpStream {
    #[inline]
    async fn read_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        limit: usize,
        wait: ReadWait,
    ) -> Result<usize, ReadError> {
        match wait {
            ReadWait::Busy(timeout) => {
                owned::read_some_timeout(deadlines, self, buf, limit, timeout).await
            }
            ReadWait::Idle(timeout) => {
                // A readiness wait came first (`wait_for_request`): the
                // request is normally there already.
                if let Some(n) = owned::read_now(self.as_raw_fd(), buf, limit) {
                    return Ok(n);
                }
                owned::read_idle_timeout(deadlines, self, buf, limit, timeout).await
            }
        }
    }

    #[inline]
    async fn readable_idle_timeout(
        &self,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<(), ReadError> {
        owned::readable_idle_timeout(deadlines, self, timeout).await
    }

    #[inline]
    async fn write_range_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        range: Range<usize>,
        timeout: Duration,
    ) -> io::Result<()> {
        owned::write_range_timeout(deadlines, self, buf, range, timeout).await
    }

    #[inline]
    async fn write_static_timeout(
        &mut self,
        deadlines: &Deadlines,
        bytes: &'static [u8],
        timeout: Duration,
    ) -> io::Result<()> {
        owned::write_static_timeout(deadlines, self, bytes, timeout).await
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        AsyncWriteRent::shutdown(self).await
    }

    fn reset_on_close(&self) {
        owned::reset_on_close(self);
    }

    #[inline]
    async fn read_shared(&self, buf: &mut BytesMut, limit: usize) -> io::Result<usize> {
        owned::read_shared(self, buf, limit).await
    }

    #[inline]
    async fn write_shared_timeout(
        &self,
        deadlines: &Deadlines,
        bytes: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        owned::write_shared_timeout(deadlines, self, bytes, timeout).await
    }

    fn shutdown_now(&self, how: libc::c_int) {
        owned::shutdown_now(self.as_raw_fd(), how);
    }

    fn splice_socket(&self) -> Option<&TcpStream> {
        Some(self)
    }
}
