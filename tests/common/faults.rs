//! Backends that fail in ways [`super::Backend`] cannot: one that takes
//! connections and never answers, one whose connects never complete.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::SAFETY;

/// A backend that accepts connections and never reads or answers.
pub struct Silent {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (connections, stop) = (Arc::clone(&connections), Arc::clone(&stop));
            thread::spawn(move || {
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream {
                        connections.fetch_add(1, SeqCst);
                        held.push(s);
                    }
                }
            })
        };
        Silent {
            addr,
            connections,
            stop,
            accept: Some(accept),
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A listener whose accept queue is full: a connect to it neither
/// succeeds nor fails (its SYNs are dropped) until the caller gives up,
/// as with a host that went silent.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: TcpStream,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        // Backlog 0: one connection fills the queue, and nobody accepts.
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let queued = TcpStream::connect_timeout(&addr, SAFETY).unwrap();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
            "a connect to a full accept queue succeeded"
        );
        Blackhole {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}
