//! Fitting how systemd starts and watches a service: socket activation
//! (serve on the listening sockets it hands over, [`activation`]) and
//! `Type=notify` (tell it when corelb is ready, reloading, stopping,
//! [`notify`]). Both are off unless systemd's variables are set
//! (`LISTEN_PID`/`LISTEN_FDS`, `NOTIFY_SOCKET`), so corelb behaves the same
//! anywhere else.

pub mod activation;
pub mod notify;
