//! Accept steering with real processes: with two workers, every new
//! connection still reaches a worker that serves it, and a corelb that
//! joins a port another process already listens on leaves steering off
//! (it could not tell which listener is whose).

#[macro_use]
mod common;

use common::*;

#[test]
fn every_new_connection_is_served_with_two_steered_workers() {
    let backend = Backend::echo_name("b");
    let proxy = Proxy::start(&["--threads", "2", "--backend", &backend.addr().to_string()]);
    // Steering revises its split every 250 ms; connections opened across
    // several revisions must all land on a listener that is accepting.
    for i in 0..200 {
        let mut client = proxy.client();
        let response = client.get(&format!("/{i}"));
        assert_eq!(response.status, 200, "connection {i}");
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    assert_eq!(backend.request_count(), 200);
    assert!(!proxy.log().contains("steering is off"), "{}", proxy.log());
}

#[test]
fn joining_another_process_on_the_same_port_turns_steering_off() {
    let backend = Backend::echo_name("b");
    let backend_addr = backend.addr().to_string();
    let first = Proxy::start(&["--threads", "2", "--backend", &backend_addr]);
    let port = first.addr().to_string();
    let second = Proxy::start(&[
        "--threads",
        "2",
        "--listen",
        &port,
        "--backend",
        &backend_addr,
    ]);
    assert!(
        second.log().contains("another process also listens on"),
        "{}",
        second.log()
    );
    // Both still serve: the kernel spreads connections over all four.
    for i in 0..40 {
        assert_eq!(second.client().get(&format!("/{i}")).status, 200);
    }
    assert_eq!(backend.request_count(), 40);
}
