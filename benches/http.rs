//! The HTTP/1.1 hot path without sockets: request-head parse + rewrite,
//! response-head parse + rewrite, and chunked decoding throughput.
//!
//! Run: `cargo bench --bench http`. Figures are per request (ns) and bytes/s.

use std::hint::black_box;
use std::net::IpAddr;

use bytes::BytesMut;
use corelb::http::rewrite::{write_request_head, write_response_head, ClientAddr, ClientSide};
use corelb::http::{parse_request, parse_response, ChunkedDecoder, MAX_HEADERS};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A typical API request head, about 200 bytes.
const SMALL_HEAD: &[u8] = b"GET /api/v1/users/12345?fields=name,email HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: application/json\r\n\
Connection: keep-alive\r\n\
X-Request-Id: 9f1c2b7e\r\n\r\n";

/// A browser-like request head with cookies, about 1.5 KiB.
fn large_head() -> Vec<u8> {
    let mut h = b"GET /static/app/main.6f2a9c.js HTTP/1.1\r\nHost: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.9,fr;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/products/category/shoes?page=3&sort=price\r\n\
X-Forwarded-For: 203.0.113.7\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\n"
        .to_vec();
    h.extend_from_slice(b"Cookie: ");
    for i in 0..14 {
        h.extend_from_slice(
            format!("session_part_{i}=a8f5f167f44f4964e6c998dee827110c3; ").as_bytes(),
        );
    }
    h.extend_from_slice(b"theme=dark\r\n\r\n");
    h
}

const RESPONSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 10:00:00 GMT\r\n\
Content-Type: application/json\r\nContent-Length: 1234\r\nConnection: keep-alive\r\n\
Cache-Control: max-age=60\r\nETag: \"5f1c-2b\"\r\n\r\n";

fn bench_request_heads(c: &mut Criterion) {
    let client = ClientAddr::new("198.51.100.23".parse::<IpAddr>().unwrap());
    let large = large_head();
    let mut group = c.benchmark_group("request_head_parse_rewrite");
    for (name, head) in [("200B", SMALL_HEAD), ("1.5KiB", large.as_slice())] {
        group.throughput(Throughput::Bytes(head.len() as u64));
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let req = parse_request(black_box(head), &mut headers)
                    .unwrap()
                    .unwrap();
                out.clear();
                write_request_head(&mut out, &req, &client, b"backend:80");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_response_head(c: &mut Criterion) {
    let mut group = c.benchmark_group("response_head_parse_rewrite");
    group.throughput(Throughput::Bytes(RESPONSE_HEAD.len() as u64));
    let mut out = BytesMut::with_capacity(4096);
    let client = ClientSide {
        http11: true,
        keep_alive: true,
    };
    group.bench_function("typical", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let res = parse_response(black_box(RESPONSE_HEAD), &mut headers, false)
                .unwrap()
                .unwrap();
            out.clear();
            write_response_head(&mut out, &res, client);
            black_box(out.len())
        })
    });
    group.finish();
}

fn chunked_body(chunk: usize, total: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(total + total / chunk * 12);
    let mut left = total;
    while left > 0 {
        let n = chunk.min(left);
        body.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'x', n));
        body.extend_from_slice(b"\r\n");
        left -= n;
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

fn bench_chunked(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked_decode");
    for chunk in [64usize, 4096, 65536] {
        let body = chunked_body(chunk, 1 << 20);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("1MiB_in_{chunk}B_chunks"), |b| {
            b.iter(|| {
                let mut decoder = ChunkedDecoder::new();
                let mut consumed = 0;
                // Fed in 16 KiB reads, as the proxy does.
                for piece in body.chunks(16 * 1024) {
                    consumed += decoder
                        .feed(piece, |d| {
                            black_box(d);
                        })
                        .unwrap()
                        .consumed;
                }
                assert!(decoder.is_done());
                black_box(consumed)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_request_heads,
    bench_response_head,
    bench_chunked
);
criterion_main!(benches);
