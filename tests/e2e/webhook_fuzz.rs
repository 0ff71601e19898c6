//! Fuzz test of `POST /webhooks/{provider}/{token}` with a Tripletex connection (HMAC-signed
//! deliveries): about 2,000 requests with random bodies, headers, signatures, tokens and paths
//! from a fixed seed. Every answer is below 500 and, when 4xx, in the JSON error shape; a
//! request without a valid signature leaves no trace (pending refetches, de-duplication records
//! and runs are compared after each one); validly signed Tripletex events are accepted and
//! recorded, so the test cannot pass by refusing everything.
//!
//! The e2e crate depends on neither the Tripletex adapter nor `rand`, so HMAC-SHA512, base64
//! and the RNG are small local implementations (checked against RFC 4231 and, through the
//! control deliveries, against the server's own verification).

use std::collections::BTreeMap;
use std::time::Instant;

use hourbridge_domain::{SecretValue, SyncRun, connection_secret_name};
use hourbridge_sandbox::{
    Sandbox, Seed, TRIPLETEX_DEMO_CONSUMER_TOKEN, TRIPLETEX_DEMO_EMPLOYEE_TOKEN,
};
use hourbridge_store::{IndexSel, WebhookDedup};
use hourbridge_sync::webhooks::PendingRefetch;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

const SEED: u64 = 0x7269_7065_7465_7821;
const REQUESTS: usize = 2_000;
const WS: &str = "acme";
const SIGNATURE: &str = "x-request-signature";
const KEY: &str = "idempotency-key";

// ---------------------------------------------------------------------------------------------
// SHA-512, HMAC-SHA512 (RFC 2104) and standard base64, as the Tripletex adapter signs.

const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

fn sha512(data: &[u8]) -> [u8; 64] {
    let mut h: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 128 != 112 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u128) * 8).to_be_bytes());
    for block in msg.chunks_exact(128) {
        let mut w = [0u64; 80];
        for (i, word) in block.chunks_exact(8).enumerate() {
            w[i] = u64::from_be_bytes(word.try_into().expect("8 bytes"));
        }
        for i in 16..80 {
            let s0 = w[i - 15].rotate_right(1) ^ w[i - 15].rotate_right(8) ^ (w[i - 15] >> 7);
            let s1 = w[i - 2].rotate_right(19) ^ w[i - 2].rotate_right(61) ^ (w[i - 2] >> 6);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..80 {
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 64];
    for (chunk, v) in out.chunks_exact_mut(8).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn hmac_sha512(key: &[u8], data: &[u8]) -> [u8; 64] {
    let mut k = [0u8; 128];
    if key.len() > 128 {
        k[..64].copy_from_slice(&sha512(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = k.map(|x| x ^ 0x36).to_vec();
    inner.extend_from_slice(data);
    let mut outer = k.map(|x| x ^ 0x5c).to_vec();
    outer.extend_from_slice(&sha512(&inner));
    sha512(&outer)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `x-request-signature` of `body` delivered with `key`, signed with `secret`.
fn sign(secret: &str, key: &str, body: &[u8]) -> String {
    let mut data = key.as_bytes().to_vec();
    data.push(b'&');
    data.extend_from_slice(body);
    base64(&hmac_sha512(secret.as_bytes(), &data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// A seeded RNG (SplitMix64): failures reproduce from `SEED` and the request number.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..n).map(|_| char::from(*self.pick(A))).collect()
    }
    /// Printable ASCII without leading or trailing blanks (the server trims those).
    fn printable(&mut self, n: usize) -> String {
        let s: String = (0..n)
            .map(|_| char::from(0x21 + self.below(0x5e) as u8))
            .collect();
        if s.is_empty() { "x".into() } else { s }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and what the server sees of them.

#[derive(Debug, Clone)]
struct Req {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    /// The headers as the handler sees them: visible ASCII only, the last of a repeated name.
    fn seen(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                let ok = v.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t');
                ok.then(|| {
                    let s = String::from_utf8_lossy(v);
                    (
                        k.to_ascii_lowercase(),
                        s.trim_matches([' ', '\t']).to_owned(),
                    )
                })
            })
            .collect()
    }

    /// Whether it is a POST to the connection's webhook with a signature that verifies.
    fn validly_signed(&self, hook_path: &str, secret: &str) -> bool {
        if self.method != Method::POST || self.path != hook_path {
            return false;
        }
        let h = self.seen();
        match (h.get(SIGNATURE), h.get(KEY)) {
            (Some(sig), Some(key)) => sig.trim() == sign(secret, key, &self.body),
            _ => false,
        }
    }

    fn describe(&self) -> String {
        let body = if self.body.len() > 300 {
            format!(
                "{} bytes starting {:?}",
                self.body.len(),
                String::from_utf8_lossy(&self.body[..120])
            )
        } else {
            format!("{:?}", String::from_utf8_lossy(&self.body))
        };
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {:?}", String::from_utf8_lossy(v)))
            .collect();
        format!(
            "[{}] {} {}\n  headers: {headers:?}\n  body: {body}",
            self.what, self.method, self.path
        )
    }
}

fn tripletex_event(rng: &mut Rng) -> Vec<u8> {
    let event = *rng.pick(&[
        "customer.create",
        "customer.update",
        "customer.delete",
        "project.create",
        "project.update",
        "project.delete",
        "employee.update",
        "customer",
        "",
    ]);
    let id = if rng.chance(80) {
        json!(rng.below(1_000_000) as u64 + 1)
    } else {
        rng.pick(&[
            json!(u64::MAX),
            json!(0),
            json!(-1),
            json!(1.5),
            json!("12"),
            json!(null),
        ])
        .clone()
    };
    let value = if event.ends_with("delete") {
        Value::Null
    } else {
        json!({"id": id, "name": "Fjordtech & Sønn AS", "version": rng.below(9)})
    };
    let mut v = json!({"subscriptionId": rng.below(100), "event": event, "id": id, "value": value});
    if rng.chance(10) {
        v["extra"] = json!({"nested": [1, 2, {"deep": "x".repeat(rng.below(200))}]});
    }
    serde_json::to_vec(&v).expect("json")
}

fn garbage_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(12) {
        0 => Vec::new(),
        1 => {
            // Now and then up to (and just over) the body limit; mostly a few KiB.
            let n = match rng.below(40) {
                0 => hourbridge_api::MAX_BODY_BYTES,
                1 => hourbridge_api::MAX_BODY_BYTES + 1,
                2 => rng.below(hourbridge_api::MAX_BODY_BYTES),
                _ => rng.below(8_192),
            };
            rng.bytes(n)
        }
        2 => vec![b'{'; rng.below(100_000) + 1],
        3 => b"\xff\xfe\x00{\"event\":\"customer.update\",\"id\":1}\xc3\x28".to_vec(),
        4 => {
            let n = rng.below(2_000);
            rng.bytes(n)
        }
        5 => rng
            .pick(&[
                "null",
                "[]",
                "{}",
                "true",
                "\"customer.update\"",
                "12",
                "[{\"event\":\"customer.update\",\"id\":1}]",
                "{\"event\":1,\"id\":\"x\"}",
                "{\"event\":\"customer.update\"}",
                "{\"id\":5}",
                "{\"event\":\"customer.update\",\"id\":1}trailing",
                "{\"event\":\"customer.update\",\"id\":1,\"event\":\"project.update\"}",
                "{\"event\":\"customer.update\",\"id\":99999999999999999999999}",
            ])
            .as_bytes()
            .to_vec(),
        6 => {
            // Deeply nested JSON.
            let d = rng.below(5_000) + 1;
            let mut s = "[".repeat(d);
            s.push_str(&"]".repeat(d));
            s.into_bytes()
        }
        7 => {
            let mut b = tripletex_event(rng);
            let cut = rng.below(b.len());
            b.truncate(cut);
            b
        }
        8 => "{\"event\":\"customer.update\",\"id\":1,\"value\":\"\u{0}\u{202e}é\"}"
            .as_bytes()
            .to_vec(),
        9 => {
            let n = if rng.chance(5) {
                hourbridge_api::MAX_BODY_BYTES - 100
            } else {
                rng.below(16_384)
            };
            let mut v =
                json!({"event": "customer.update", "id": 7, "value": {"pad": "a".repeat(n)}});
            v["x"] = json!(1);
            serde_json::to_vec(&v).expect("json")
        }
        10 => b"event=customer.update&id=1".to_vec(),
        _ => tripletex_event(rng),
    }
}

fn content_type(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(8) {
        0 => None,
        1 => Some(b"text/plain".to_vec()),
        2 => Some(b"application/x-www-form-urlencoded".to_vec()),
        3 => Some(b"multipart/form-data; boundary=x".to_vec()),
        4 => Some({
            let n = rng.below(40);
            rng.bytes(n)
        }),
        5 => Some(b"application/json; charset=latin1".to_vec()),
        _ => Some(b"application/json".to_vec()),
    }
}

/// A signature header value that is not the right one for `key` and `body`.
fn bad_signature(rng: &mut Rng, secret: &str, key: &str, body: &[u8]) -> Vec<u8> {
    let good = sign(secret, key, body);
    match rng.below(14) {
        0 => Vec::new(),
        1 => b"bm90IGEgc2lnbmF0dXJl".to_vec(),
        2 => {
            let n = rng.below(200) + 1;
            rng.printable(n)
        }
        .into_bytes(),
        3 => {
            let n = rng.below(100);
            rng.bytes(n)
        }
        4 => sign(secret, key, b"another body").into_bytes(),
        5 => sign(secret, &format!("{key}x"), body).into_bytes(),
        6 => sign("not-the-secret", key, body).into_bytes(),
        7 => sign(&format!("{secret}x"), key, body).into_bytes(),
        8 => good.trim_end_matches('=').as_bytes().to_vec(),
        9 => {
            // One character changed.
            let mut b = good.into_bytes();
            let i = rng.below(b.len() - 2);
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            b
        }
        10 => good.as_bytes()[..good.len() / 2].to_vec(),
        11 => format!("sha512={good}").into_bytes(),
        12 => base64(&hmac_sha512(secret.as_bytes(), body)).into_bytes(),
        _ => good.to_ascii_lowercase().into_bytes(),
    }
}

struct Fuzz<'a> {
    rng: Rng,
    hook_path: &'a str,
    token: &'a str,
    secret: &'a str,
    n: usize,
}

impl Fuzz<'_> {
    fn key(&mut self) -> String {
        match self.rng.below(6) {
            0 => {
                let n = self.rng.below(80) + 1;
                self.rng.printable(n)
            }
            1 => "same-key".into(),
            _ => format!("fz-{}-{}", self.n, self.rng.alnum(12)),
        }
    }

    fn request(&mut self) -> Req {
        self.n += 1;
        let rng = &mut self.rng;
        let body = if rng.chance(35) {
            tripletex_event(rng)
        } else {
            garbage_body(rng)
        };
        let mut req = Req {
            what: "",
            method: Method::POST,
            path: self.hook_path.to_owned(),
            headers: Vec::new(),
            body,
        };
        if let Some(ct) = content_type(&mut self.rng) {
            req.headers.push(("content-type".into(), ct));
        }
        let key = self.key();
        let secret = self.secret;
        let rng = &mut self.rng;
        match rng.below(20) {
            0 => req.what = "no headers",
            1 => {
                req.what = "key only";
                req.headers.push((KEY.into(), key.into_bytes()));
            }
            2 => {
                req.what = "valid signature, no key";
                let sig = sign(secret, &key, &req.body);
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
            }
            3..=5 => {
                req.what = "bad signature";
                let sig = bad_signature(rng, secret, &key, &req.body);
                req.headers.push((KEY.into(), key.into_bytes()));
                req.headers.push((SIGNATURE.into(), sig));
            }
            6 => {
                req.what = "duplicated signature (valid first)";
                let sig = sign(secret, &key, &req.body);
                let bad = bad_signature(rng, secret, &key, &req.body);
                req.headers.push((KEY.into(), key.into_bytes()));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
                req.headers.push((SIGNATURE.into(), bad));
            }
            7 => {
                req.what = "duplicated key (signature for the first)";
                let sig = sign(secret, &key, &req.body);
                req.headers.push((KEY.into(), key.clone().into_bytes()));
                req.headers
                    .push((KEY.into(), format!("{key}-2").into_bytes()));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
            }
            8 => {
                req.what = "garbage key bytes";
                let k = {
                    let n = rng.below(60) + 1;
                    rng.bytes(n)
                };
                let sig = sign(secret, &String::from_utf8_lossy(&k), &req.body);
                req.headers.push((KEY.into(), k));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
            }
            9 => {
                // The key and body split differently around an `&`: the same HMAC input.
                req.what = "re-split key/body";
                let sig = sign(secret, &key, &req.body);
                let moved = match req.body.iter().position(|&b| b == b'&') {
                    Some(at) if req.body[..at].iter().all(|&b| (0x21..0x7f).contains(&b)) => {
                        // Same HMAC input: `key&prefix` + `&` + rest.
                        let prefix = String::from_utf8_lossy(&req.body[..at]).into_owned();
                        req.body.drain(..=at);
                        format!("{key}&{prefix}")
                    }
                    _ => format!("{key}&{}", rng.alnum(3)),
                };
                req.headers.push((KEY.into(), moved.into_bytes()));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
            }
            10 => {
                req.what = "valid signature, other provider or token";
                let sig = sign(secret, &key, &req.body);
                req.headers.push((KEY.into(), key.into_bytes()));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
                req.path = self.other_path();
            }
            11 => {
                req.what = "valid signature, other method";
                let sig = sign(secret, &key, &req.body);
                req.headers.push((KEY.into(), key.into_bytes()));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
                req.method = self
                    .rng
                    .pick(&[Method::GET, Method::PUT, Method::DELETE, Method::PATCH])
                    .clone();
                if req.method == Method::GET {
                    req.body.clear();
                }
            }
            12 => {
                req.what = "valid signature, extra headers";
                let sig = sign(secret, &key, &req.body);
                req.headers.push((KEY.into(), key.into_bytes()));
                req.headers
                    .push((SIGNATURE.into(), format!(" {sig} ").into_bytes()));
                req.headers
                    .push(("authorization".into(), b"Bearer garbage".to_vec()));
                req.headers
                    .push(("x-forwarded-for".into(), rng.printable(20).into_bytes()));
                req.headers
                    .push(("content-encoding".into(), b"gzip".to_vec()));
            }
            _ => {
                req.what = "valid signature";
                let sig = sign(secret, &key, &req.body);
                req.headers.push((KEY.into(), key.into_bytes()));
                req.headers.push((SIGNATURE.into(), sig.into_bytes()));
            }
        }
        req
    }

    fn other_path(&mut self) -> String {
        let t = self.token;
        let rng = &mut self.rng;
        match rng.below(14) {
            0 => format!("/webhooks/harvest/{t}"),
            1 => format!("/webhooks/basecamp/{t}"),
            2 => format!("/webhooks/hubstaff/{t}"),
            3 => format!("/webhooks/TRIPLETEX/{t}"),
            4 => format!("/webhooks/nosuch/{t}"),
            5 => format!("/webhooks/tripletex/{}", rng.alnum(t.len())),
            6 => format!("/webhooks/tripletex/{}", &t[..t.len() - 1]),
            7 => format!("/webhooks/tripletex/{t}x"),
            8 => format!("/webhooks/tripletex/{}", t.to_ascii_uppercase()),
            9 => format!("/webhooks/tripletex/{t}/extra"),
            10 => format!("/webhooks/tripletex/{}", "a".repeat(129)),
            11 => format!(
                "/webhooks/tripletex/{}",
                rng.pick(&["%FF", "%00", "..", "%2F", "a%20b", "%C3%A9", "*", "-", "_"])
            ),
            12 => "/webhooks/tripletex/".into(),
            _ => format!("/webhooks/tripletex/{t}%00"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What a request may change.

#[derive(Debug, PartialEq)]
struct Trace {
    pending: Vec<PendingRefetch>,
    dedup: Vec<String>,
    runs: Vec<(String, String)>,
}

async fn trace(s: &Server) -> Trace {
    let engine = &s.ctx.engine;
    let mut pending = engine
        .pending_refetches(WS, "tripletex")
        .await
        .expect("pending refetches");
    pending.sort_by_key(|p| serde_json::to_string(&p.event).unwrap_or_default());
    let dedup = engine
        .store
        .list_all::<WebhookDedup>(
            engine
                .store
                .query::<WebhookDedup>(WS, IndexSel::Primary, 500),
        )
        .await
        .expect("dedup records")
        .into_iter()
        .map(|d| d.key)
        .collect();
    let runs = engine
        .store
        .list_all::<SyncRun>(engine.store.query::<SyncRun>(WS, IndexSel::Primary, 500))
        .await
        .expect("runs")
        .into_iter()
        .map(|r| (r.id.to_string(), format!("{:?}", r.state)))
        .collect();
    Trace {
        pending,
        dedup,
        runs,
    }
}

async fn send(http: &reqwest::Client, base: &str, r: &Req) -> (StatusCode, Vec<u8>) {
    let mut b = http.request(r.method.clone(), format!("{base}{}", r.path));
    for (k, v) in &r.headers {
        b = b.header(
            k.as_str(),
            reqwest::header::HeaderValue::from_bytes(v).unwrap_or_else(|_| {
                // Bytes a client cannot send at all (CR, LF, NUL): sent lossily replaced.
                let clean: Vec<u8> = v
                    .iter()
                    .map(|&c| if c < 0x20 || c == 0x7f { b'?' } else { c })
                    .collect();
                reqwest::header::HeaderValue::from_bytes(&clean).expect("header value")
            }),
        );
    }
    let res = b
        .body(r.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}\n{}", r.describe()));
    let st = res.status();
    (
        st,
        res.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

/// Whether `body` is a Tripletex callback the adapter reads (`event` once, an unsigned `id`).
fn is_event(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["event"].is_string() && v["id"].is_u64())
        && body.windows(8).filter(|w| w == b"\"event\":").count() == 1
}

fn check_shape(st: StatusCode, body: &[u8], r: &Req) {
    assert!(
        st.as_u16() < 500,
        "5xx {st}: {}\n{}",
        String::from_utf8_lossy(body),
        r.describe()
    );
    if st.is_client_error() {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{st} not in the error shape: {:?}\n{}",
            String::from_utf8_lossy(body),
            r.describe()
        );
    }
}

#[tokio::test]
async fn webhook_fuzz_never_5xx_and_never_changes_without_a_valid_signature() {
    // Sanity of the local signing: RFC 4231 test case 2.
    assert_eq!(
        hex(&hmac_sha512(b"Jefe", b"what do ya want for nothing?")),
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
         9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"abc"), "YWJj");
    assert_eq!(base64(b"a"), "YQ==");

    let sb = Sandbox::start(Seed::Demo).await.expect("sandbox");
    let (_keep, dir) = data_dir();
    // No in-process worker: the refetch runs deliveries start stay queued, so nothing but the
    // requests themselves changes what is compared.
    let s = Server::start_idle(
        &dir,
        &[
            ("HOURBRIDGE_TRIPLETEX_API_URL", sb.tripletex_api_url()),
            (
                "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN",
                TRIPLETEX_DEMO_CONSUMER_TOKEN.to_owned(),
            ),
        ],
    )
    .await;
    let owner = s.token(WS, "olga", "owner");
    let service = s.token(WS, "billing", "service");
    let (st, b) = s
        .call(
            Some(&owner),
            Method::POST,
            "/v1/workspaces",
            Some(json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = s
        .call(
            Some(&service),
            Method::PUT,
            "/v1/workspace/addons/tripletex",
            None,
        )
        .await;
    assert!(st.is_success(), "add-on: {st} {b}");
    let (st, b) = s
        .call(
            Some(&owner),
            Method::PUT,
            "/v1/connections/tripletex",
            Some(json!({"employee_token": TRIPLETEX_DEMO_EMPLOYEE_TOKEN})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    for step in ["test", "confirm"] {
        let (st, b) = s
            .call(
                Some(&owner),
                Method::POST,
                &format!("/v1/connections/tripletex/{step}"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{step}: {b}");
    }
    let (_, c) = s
        .call(Some(&owner), Method::GET, "/v1/connections/tripletex", None)
        .await;
    assert_eq!(c["state"], "active", "{c}");
    let url = c["webhook_url"].as_str().expect("webhook_url").to_owned();
    let hook_path = url[url.find("/webhooks/").expect("webhook path")..].to_owned();
    let token = hook_path.rsplit('/').next().expect("token").to_owned();
    assert_eq!(hook_path, format!("/webhooks/tripletex/{token}"));
    let secret: SecretValue = s
        .ctx
        .engine
        .secrets
        .get(&format!(
            "{}/webhook",
            connection_secret_name(WS, "tripletex")
        ))
        .await
        .expect("secret store")
        .expect("the signing secret");
    let secret = secret.expose().to_owned();
    let http = reqwest::Client::new();

    // Control: a validly signed event is accepted and recorded (and a repeat is not).
    let control = |key: &str, id: u64| {
        let body = serde_json::to_vec(
            &json!({"subscriptionId": 1, "event": "customer.update", "id": id, "value": {"id": id}}),
        )
        .expect("json");
        Req {
            what: "control",
            method: Method::POST,
            path: hook_path.clone(),
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                (KEY.into(), key.as_bytes().to_vec()),
                (SIGNATURE.into(), sign(&secret, key, &body).into_bytes()),
            ],
            body,
        }
    };
    let before = trace(&s).await;
    assert!(
        before.pending.is_empty() && before.dedup.is_empty(),
        "{before:?}"
    );
    let first = control("control-1", 424_242);
    let (st, b) = send(&http, &s.base, &first).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&b));
    let after = trace(&s).await;
    assert!(
        after
            .pending
            .iter()
            .any(|p| p.event.remote_id == "424242" && !p.event.deleted),
        "{after:?}"
    );
    assert_eq!(after.dedup.len(), 1, "{after:?}");
    assert_eq!(
        after.runs.len(),
        before.runs.len() + 1,
        "a refetch run is queued"
    );
    let (st, _) = send(&http, &s.base, &first).await;
    assert_eq!(st, StatusCode::ACCEPTED, "a repeat is accepted");
    assert_eq!(trace(&s).await, after, "a repeat changes nothing");

    // The fuzz.
    let started = Instant::now();
    let mut fuzz = Fuzz {
        rng: Rng(SEED),
        hook_path: &hook_path,
        token: &token,
        secret: &secret,
        n: 0,
    };
    let mut prev = after;
    let (mut invalid, mut valid, mut changed) = (0usize, 0usize, 0usize);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    // Requests that must change nothing are checked in batches (a trace per request would take
    // most of the time budget); a request that may change something is checked on its own.
    let mut batch: Vec<String> = Vec::new();
    for i in 0..REQUESTS {
        let r = fuzz.request();
        let ok = r.validly_signed(&hook_path, &secret);
        let accepts = ok && r.body.len() <= hourbridge_api::MAX_BODY_BYTES && is_event(&r.body);
        let ctx = || format!("request #{i} (seed {SEED:#x})\n{}", r.describe());
        if accepts && !batch.is_empty() {
            let now = trace(&s).await;
            assert_eq!(
                now,
                prev,
                "one of these changed something:\n{}",
                batch.join("\n")
            );
            batch.clear();
        }
        let (st, body) = send(&http, &s.base, &r).await;
        *statuses.entry(st.as_u16()).or_default() += 1;
        check_shape(st, &body, &r);
        if ok {
            valid += 1;
            let expected = if r.body.len() > hourbridge_api::MAX_BODY_BYTES {
                StatusCode::PAYLOAD_TOO_LARGE
            } else if accepts {
                StatusCode::ACCEPTED
            } else if st == StatusCode::ACCEPTED {
                // A key seen before: a duplicate, dropped before the body is read.
                st
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(
                st,
                expected,
                "validly signed: {}\n{}",
                String::from_utf8_lossy(&body),
                ctx()
            );
        } else {
            invalid += 1;
            assert!(
                st.is_client_error(),
                "not validly signed but answered {st}: {}\n{}",
                String::from_utf8_lossy(&body),
                ctx()
            );
        }
        if accepts {
            let now = trace(&s).await;
            if now != prev {
                changed += 1;
            }
            prev = now;
        } else {
            batch.push(ctx());
            if batch.len() >= 25 || i + 1 == REQUESTS {
                let now = trace(&s).await;
                assert_eq!(
                    now,
                    prev,
                    "one of these changed something:\n{}",
                    batch.join("\n")
                );
                batch.clear();
            }
        }
    }

    // Still working afterwards, and the fuzz exercised both sides.
    let last = control("control-2", 434_343);
    let (st, _) = send(&http, &s.base, &last).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let end = trace(&s).await;
    assert!(end.pending.iter().any(|p| p.event.remote_id == "434343"));
    assert_eq!(end.dedup.len(), prev.dedup.len() + 1);
    eprintln!(
        "webhook fuzz: {REQUESTS} requests in {:?}: {invalid} without a valid signature, \
         {valid} validly signed ({changed} recorded something); statuses {statuses:?}",
        started.elapsed()
    );
    assert!(invalid > 1_000, "{invalid}");
    assert!(valid > 200 && changed > 50, "{valid} {changed}");
    s.stop().await;
    sb.stop().await;
}
