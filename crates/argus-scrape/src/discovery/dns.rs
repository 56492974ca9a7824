//! `dns_sd_configs`: A, AAAA, SRV, MX and NS lookups with a small DNS client of our own
//! (UDP, one question, answers parsed with name compression), against the nameservers of
//! `/etc/resolv.conf`. Labels as Prometheus sets them: `__meta_dns_name`,
//! `__meta_dns_srv_record_target`, `__meta_dns_srv_record_port`,
//! `__meta_dns_mx_record_target`, `__meta_dns_ns_record_target`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration as StdDuration;

use argus_config::prometheus::DnsSdConfig;
use tokio::sync::watch;

use super::{BoxFuture, Discoverer, Outbox, Updates, refresh_period, stopped_within};
use crate::target::{ADDRESS_LABEL, TargetGroup};

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;

/// One answer record we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv { port: u16, target: String },
    Mx(String),
    Ns(String),
}

fn record_type(name: &str) -> Option<u16> {
    Some(match name {
        "A" => TYPE_A,
        "AAAA" => TYPE_AAAA,
        "SRV" => TYPE_SRV,
        "MX" => TYPE_MX,
        "NS" => TYPE_NS,
        _ => return None,
    })
}

/// A DNS query message for `name` (made absolute) and `qtype`.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // recursion desired
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("invalid DNS name {name:?}"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // class IN
    Ok(out)
}

/// A (possibly compressed) name at `pos`; returns it (rooted, with the final dot) and the
/// position after it in the original message.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Some((name, end.unwrap_or(pos + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let target = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            pos = target;
            continue;
        }
        let label = msg.get(pos + 1..pos + 1 + len)?;
        name.push_str(&String::from_utf8_lossy(label));
        name.push('.');
        pos += 1 + len;
    }
    None
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// The answers of a response to query `id`; an error for a failed or foreign response.
pub fn decode_response(msg: &[u8], id: u16) -> Result<Vec<Record>, String> {
    let bad = || "malformed DNS response".to_string();
    if msg.len() < 12 || u16_at(msg, 0) != Some(id) {
        return Err(bad());
    }
    let rcode = msg[3] & 0x0f;
    if rcode == 3 {
        return Ok(Vec::new()); // NXDOMAIN: no targets
    }
    if rcode != 0 {
        return Err(format!("DNS server answered with rcode {rcode}"));
    }
    let questions = u16_at(msg, 4).ok_or_else(bad)?;
    let answers = u16_at(msg, 6).ok_or_else(bad)?;
    let mut pos = 12;
    for _ in 0..questions {
        let (_, after) = read_name(msg, pos).ok_or_else(bad)?;
        pos = after + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        let (_, after) = read_name(msg, pos).ok_or_else(bad)?;
        let rtype = u16_at(msg, after).ok_or_else(bad)?;
        let len = u16_at(msg, after + 8).ok_or_else(bad)? as usize;
        let data = after + 10;
        let rdata = msg.get(data..data + len).ok_or_else(bad)?;
        match rtype {
            TYPE_A if len == 4 => out.push(Record::A(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            TYPE_AAAA if len == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                out.push(Record::Aaaa(Ipv6Addr::from(b)));
            }
            TYPE_SRV if len >= 7 => {
                let port = u16_at(msg, data + 4).ok_or_else(bad)?;
                let (target, _) = read_name(msg, data + 6).ok_or_else(bad)?;
                out.push(Record::Srv { port, target });
            }
            TYPE_MX if len >= 3 => {
                let (target, _) = read_name(msg, data + 2).ok_or_else(bad)?;
                out.push(Record::Mx(target));
            }
            TYPE_NS => {
                let (target, _) = read_name(msg, data).ok_or_else(bad)?;
                out.push(Record::Ns(target));
            }
            _ => {} // CNAMEs and others on the way are skipped, as Prometheus does.
        }
        pos = data + len;
    }
    Ok(out)
}

/// The nameservers of `/etc/resolv.conf` (port 53).
pub fn system_nameservers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    out
}

/// Asks each nameserver in turn until one answers.
pub async fn lookup(
    nameservers: &[SocketAddr],
    name: &str,
    qtype: u16,
) -> Result<Vec<Record>, String> {
    let mut last_error = String::from("no nameservers");
    for server in nameservers {
        let id: u16 = rand_id();
        let query = encode_query(id, name, qtype)?;
        let bind: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let attempt = async {
            let socket = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(|e| e.to_string())?;
            socket
                .send_to(&query, server)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, from) = socket
                    .recv_from(&mut buf)
                    .await
                    .map_err(|e| e.to_string())?;
                if from == *server && u16_at(&buf[..n], 0) == Some(id) {
                    return decode_response(&buf[..n], id);
                }
            }
        };
        match tokio::time::timeout(StdDuration::from_secs(5), attempt).await {
            Ok(Ok(records)) => return Ok(records),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = format!("timeout querying {server}"),
        }
    }
    Err(format!("could not resolve {name:?}: {last_error}"))
}

fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

/// `host:port`, with brackets around IPv6 addresses.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The target group for one name's records.
pub fn group_for(name: &str, records: &[Record], port: u16) -> TargetGroup {
    let mut targets = Vec::new();
    for record in records {
        let (address, srv_target, srv_port, mx, ns) = match record {
            Record::A(ip) => (host_port(&ip.to_string(), port), "", String::new(), "", ""),
            Record::Aaaa(ip) => (host_port(&ip.to_string(), port), "", String::new(), "", ""),
            Record::Srv { port, target } => (
                host_port(target.trim_end_matches('.'), *port),
                target.as_str(),
                port.to_string(),
                "",
                "",
            ),
            Record::Mx(target) => (
                host_port(target.trim_end_matches('.'), port),
                "",
                String::new(),
                target.as_str(),
                "",
            ),
            Record::Ns(target) => (
                host_port(target.trim_end_matches('.'), port),
                "",
                String::new(),
                "",
                target.as_str(),
            ),
        };
        let mut labels = BTreeMap::from([
            (ADDRESS_LABEL.to_string(), address),
            ("__meta_dns_name".to_string(), name.to_string()),
        ]);
        for (label, value) in [
            ("__meta_dns_srv_record_target", srv_target),
            ("__meta_dns_srv_record_port", srv_port.as_str()),
            ("__meta_dns_mx_record_target", mx),
            ("__meta_dns_ns_record_target", ns),
        ] {
            if !value.is_empty() {
                labels.insert(label.to_string(), value.to_string());
            }
        }
        targets.push(labels);
    }
    TargetGroup {
        source: name.to_string(),
        targets,
        labels: BTreeMap::new(),
    }
}

pub struct DnsDiscoverer {
    pub config: DnsSdConfig,
    pub nameservers: Vec<SocketAddr>,
}

impl Discoverer for DnsDiscoverer {
    fn run(
        self: Box<Self>,
        provider: usize,
        updates: Updates,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture {
        Box::pin(async move {
            let Some(qtype) = record_type(&self.config.record_type) else {
                tracing::error!(record_type = %self.config.record_type, "unsupported dns_sd_configs type");
                return;
            };
            let refresh = refresh_period(self.config.refresh_interval);
            let mut outbox = Outbox::new(provider, updates);
            let mut groups: BTreeMap<String, TargetGroup> = BTreeMap::new();
            loop {
                for name in &self.config.names {
                    match lookup(&self.nameservers, name, qtype).await {
                        Ok(records) => {
                            groups
                                .insert(name.clone(), group_for(name, &records, self.config.port));
                        }
                        // A failed lookup keeps the name's previous targets.
                        Err(e) => tracing::error!(name, error = %e, "DNS SD lookup failed"),
                    }
                }
                if !outbox
                    .send_if_changed(groups.values().cloned().collect())
                    .await
                {
                    return;
                }
                if stopped_within(refresh, &mut stop).await {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response message answering `query` with the given (type, rdata) records, names in
    /// rdata written with a compression pointer to the question name where `compress`.
    fn response(query: &[u8], answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut msg = query.to_vec();
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = answers.len() as u8;
        for (rtype, rdata) in answers {
            msg.extend_from_slice(&[0xc0, 12]); // the question's name
            msg.extend_from_slice(&rtype.to_be_bytes());
            msg.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            msg.extend_from_slice(rdata);
        }
        msg
    }

    fn name_bytes(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    #[test]
    fn srv_a_and_aaaa_answers_become_targets() {
        let query = encode_query(7, "_metrics._tcp.example.org", TYPE_SRV).unwrap();
        let mut srv = vec![0, 10, 0, 5, 0x23, 0x8c]; // priority, weight, port 9100
        srv.extend(name_bytes("node1.example.org"));
        let mut srv_compressed = vec![0, 10, 0, 5, 0x23, 0x8d];
        srv_compressed.extend_from_slice(&[0xc0, 12]); // points at the question name
        let msg = response(
            &query,
            &[
                (TYPE_SRV, srv),
                (TYPE_SRV, srv_compressed),
                (5, name_bytes("alias.example.org")), // a CNAME: skipped
                (TYPE_A, vec![10, 0, 0, 1]),
            ],
        );
        let records = decode_response(&msg, 7).unwrap();
        assert_eq!(
            records,
            vec![
                Record::Srv {
                    port: 9100,
                    target: "node1.example.org.".into()
                },
                Record::Srv {
                    port: 9101,
                    target: "_metrics._tcp.example.org.".into()
                },
                Record::A(Ipv4Addr::new(10, 0, 0, 1)),
            ]
        );
        let group = group_for("_metrics._tcp.example.org", &records, 80);
        assert_eq!(group.targets[0]["__address__"], "node1.example.org:9100");
        assert_eq!(
            group.targets[0]["__meta_dns_srv_record_target"],
            "node1.example.org."
        );
        assert_eq!(group.targets[0]["__meta_dns_srv_record_port"], "9100");
        assert_eq!(group.targets[2]["__address__"], "10.0.0.1:80");
        assert!(!group.targets[2].contains_key("__meta_dns_srv_record_port"));
        let aaaa = group_for("x", &[Record::Aaaa(Ipv6Addr::LOCALHOST)], 9100);
        assert_eq!(aaaa.targets[0]["__address__"], "[::1]:9100");
        // Wrong id, truncated data, NXDOMAIN, server failure.
        assert!(decode_response(&msg, 8).is_err());
        assert!(decode_response(&msg[..msg.len() - 2], 7).is_err());
        let mut nx = query.clone();
        nx[3] = 0x83;
        assert_eq!(decode_response(&nx, 7), Ok(Vec::new()));
        let mut fail = query.clone();
        fail[3] = 0x82;
        assert!(decode_response(&fail, 7).is_err());
        // Pointer loops do not hang.
        let mut looped = query.clone();
        looped[7] = 1;
        looped.extend_from_slice(&[0xc0, (looped.len()) as u8, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]);
        assert!(decode_response(&looped, 7).is_err());
    }

    #[tokio::test]
    async fn lookups_go_over_udp_to_the_nameserver() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for _ in 0..2 {
                let Ok((n, from)) = server.recv_from(&mut buf).await else {
                    return;
                };
                let reply = response(&buf[..n], &[(TYPE_A, vec![127, 0, 0, 9])]);
                let _ = server.send_to(&reply, from).await;
            }
        });
        let records = lookup(&[address], "svc.local", TYPE_A).await.unwrap();
        assert_eq!(records, vec![Record::A(Ipv4Addr::new(127, 0, 0, 9))]);
    }

    proptest::proptest! {
        #[test]
        fn random_responses_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode_response(&bytes, u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]));
        }
    }
}
