//! The MQTT wire, through rumqttc's codec for 3.1.1 (`mqttbytes::v4`) and 5.0
//! (`v5::mqttbytes::v5`): packets are decoded into the few events the broker acts on and
//! its answers are encoded in the version the client connected with. No packet is parsed
//! by hand here.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// The largest packet accepted from a client (the codec refuses bigger ones).
pub const MAX_PACKET: usize = 1 << 20;

/// The protocol version a client connected with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// A client's CONNECT, whatever its version.
#[derive(Debug)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    /// 3.1.1 `clean_session`, 5.0 `clean_start`.
    pub clean_start: bool,
    pub keep_alive_s: u16,
    /// 5.0's session expiry interval (`None`: not given).
    pub session_expiry_s: Option<u32>,
}

/// A PUBLISH, either way: a client's to the broker, or the broker's to a client.
#[derive(Debug)]
pub struct Publish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// 0 for QoS 0.
    pub pkid: u16,
}

/// What a client sent after CONNECT.
#[derive(Debug)]
pub enum In {
    Publish(Publish),
    PubAck(u16),
    /// Only for QoS 2 messages, which this broker never sends: ignored.
    PubRec,
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A second CONNECT: a protocol violation; the connection closes.
    Connect,
    /// A packet only a server sends (CONNACK, SUBACK, …) or AUTH: the connection closes.
    Unexpected,
}

/// What the broker sends a client.
#[derive(Debug)]
pub enum Out {
    ConnAck {
        session_present: bool,
    },
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    /// Per filter: the QoS granted, or `None` for a refused filter.
    SubAck {
        pkid: u16,
        granted: Vec<Option<u8>>,
    },
    UnsubAck {
        pkid: u16,
        filters: usize,
    },
    PingResp,
}

/// A malformed or unsupported packet (the connection closes).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("MQTT 3.1.1: {0}")]
    V311(rumqttc::mqttbytes::Error),
    #[error("MQTT 5.0: {0}")]
    V5(rumqttc::v5::mqttbytes::Error),
    #[error("the first packet was not CONNECT")]
    NotConnect,
}

fn qos4(q: rumqttc::mqttbytes::QoS) -> u8 {
    q as u8
}

fn qos5(q: rumqttc::v5::mqttbytes::QoS) -> u8 {
    q as u8
}

fn to_qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn to_qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// The CONNECT at the head of `buf`, once it is all there (`Ok(None)`: read more).
///
/// The 3.1.1 codec is tried first; a CONNECT it refuses or reads as level 5 is decoded
/// again by the 5.0 codec, which also reads its properties.
pub fn read_connect(buf: &mut BytesMut) -> Result<Option<Connect>, WireError> {
    let mut probe = buf.clone();
    let v311 = match v4::Packet::read(&mut probe, MAX_PACKET) {
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
        Ok(v4::Packet::Connect(c)) if c.protocol == rumqttc::mqttbytes::Protocol::V4 => {
            *buf = probe;
            return Ok(Some(Connect {
                version: Version::V311,
                client_id: c.client_id,
                clean_start: c.clean_session,
                keep_alive_s: c.keep_alive,
                session_expiry_s: None,
            }));
        }
        Ok(v4::Packet::Connect(_)) => None,
        Ok(_) => return Err(WireError::NotConnect),
        // A 5.0 CONNECT's properties do not parse as 3.1.1: try the 5.0 codec.
        Err(e) => Some(e),
    };
    let mut probe = buf.clone();
    match v5::Packet::read(&mut probe, Some(MAX_PACKET as u32)) {
        Ok(v5::Packet::Connect(c, _, _)) => {
            *buf = probe;
            Ok(Some(Connect {
                version: Version::V5,
                client_id: c.client_id,
                clean_start: c.clean_start,
                keep_alive_s: c.keep_alive,
                session_expiry_s: c.properties.and_then(|p| p.session_expiry_interval),
            }))
        }
        Ok(_) => Err(WireError::NotConnect),
        Err(e) => Err(match v311 {
            Some(e) => WireError::V311(e),
            None => WireError::V5(e),
        }),
    }
}

/// The next packet at the head of `buf` (`Ok(None)`: read more).
pub fn read(version: Version, buf: &mut BytesMut) -> Result<Option<In>, WireError> {
    match version {
        Version::V311 => match v4::Packet::read(buf, MAX_PACKET) {
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(WireError::V311(e)),
            Ok(p) => Ok(Some(match p {
                v4::Packet::Publish(p) => In::Publish(Publish {
                    topic: p.topic,
                    payload: p.payload,
                    qos: qos4(p.qos),
                    retain: p.retain,
                    pkid: p.pkid,
                }),
                v4::Packet::PubAck(a) => In::PubAck(a.pkid),
                v4::Packet::PubRec(_) => In::PubRec,
                v4::Packet::PubRel(a) => In::PubRel(a.pkid),
                v4::Packet::PubComp(a) => In::PubComp(a.pkid),
                v4::Packet::Subscribe(s) => In::Subscribe {
                    pkid: s.pkid,
                    filters: s.filters.into_iter().map(|f| (f.path, qos4(f.qos))).collect(),
                },
                v4::Packet::Unsubscribe(u) => In::Unsubscribe { pkid: u.pkid, filters: u.topics },
                v4::Packet::PingReq => In::PingReq,
                v4::Packet::Disconnect => In::Disconnect,
                v4::Packet::Connect(_) => In::Connect,
                _ => In::Unexpected,
            })),
        },
        Version::V5 => match v5::Packet::read(buf, Some(MAX_PACKET as u32)) {
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            // The 5.0 codec refuses every empty packet but PINGREQ/PINGRESP; from a client
            // that is a DISCONNECT with its reason code left out (0: normal), or an empty
            // AUTH, which this broker does not support: both end the connection.
            Err(rumqttc::v5::mqttbytes::Error::PayloadRequired) => Ok(Some(In::Disconnect)),
            Err(e) => Err(WireError::V5(e)),
            Ok(p) => Ok(Some(match p {
                v5::Packet::Publish(p) => In::Publish(Publish {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload,
                    qos: qos5(p.qos),
                    retain: p.retain,
                    pkid: p.pkid,
                }),
                v5::Packet::PubAck(a) => In::PubAck(a.pkid),
                v5::Packet::PubRec(_) => In::PubRec,
                v5::Packet::PubRel(a) => In::PubRel(a.pkid),
                v5::Packet::PubComp(a) => In::PubComp(a.pkid),
                v5::Packet::Subscribe(s) => In::Subscribe {
                    pkid: s.pkid,
                    filters: s.filters.into_iter().map(|f| (f.path, qos5(f.qos))).collect(),
                },
                v5::Packet::Unsubscribe(u) => In::Unsubscribe { pkid: u.pkid, filters: u.filters },
                v5::Packet::PingReq(_) => In::PingReq,
                v5::Packet::Disconnect(_) => In::Disconnect,
                v5::Packet::Connect(..) => In::Connect,
                _ => In::Unexpected,
            })),
        },
    }
}

/// Appends `out`, encoded for `version`, to `buf`.
pub fn write(version: Version, out: Out, buf: &mut BytesMut) -> Result<(), WireError> {
    match version {
        Version::V311 => {
            let p = match out {
                Out::ConnAck { session_present } => {
                    v4::Packet::ConnAck(v4::ConnAck::new(v4::ConnectReturnCode::Success, session_present))
                }
                Out::Publish(Publish { topic, payload, qos, retain, pkid }) => {
                    let mut p = v4::Publish::from_bytes(topic, to_qos4(qos), payload);
                    p.retain = retain;
                    p.pkid = pkid;
                    v4::Packet::Publish(p)
                }
                Out::PubAck(id) => v4::Packet::PubAck(v4::PubAck::new(id)),
                Out::PubRec(id) => v4::Packet::PubRec(v4::PubRec::new(id)),
                Out::PubComp(id) => v4::Packet::PubComp(v4::PubComp::new(id)),
                Out::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck::new(
                    pkid,
                    granted
                        .into_iter()
                        .map(|g| match g {
                            Some(q) => v4::SubscribeReasonCode::Success(to_qos4(q)),
                            None => v4::SubscribeReasonCode::Failure,
                        })
                        .collect(),
                )),
                Out::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid)),
                Out::PingResp => v4::Packet::PingResp,
            };
            p.write(buf, MAX_PACKET).map(|_| ()).map_err(WireError::V311)
        }
        Version::V5 => {
            let p = match out {
                Out::ConnAck { session_present } => v5::Packet::ConnAck(v5::ConnAck {
                    session_present,
                    code: v5::ConnectReturnCode::Success,
                    properties: None,
                }),
                Out::Publish(Publish { topic, payload, qos, retain, pkid }) => {
                    let mut p = v5::Publish::new(topic, to_qos5(qos), payload, None);
                    p.retain = retain;
                    p.pkid = pkid;
                    v5::Packet::Publish(p)
                }
                Out::PubAck(pkid) => {
                    v5::Packet::PubAck(v5::PubAck { pkid, reason: v5::PubAckReason::Success, properties: None })
                }
                Out::PubRec(pkid) => {
                    v5::Packet::PubRec(v5::PubRec { pkid, reason: v5::PubRecReason::Success, properties: None })
                }
                Out::PubComp(pkid) => {
                    v5::Packet::PubComp(v5::PubComp { pkid, reason: v5::PubCompReason::Success, properties: None })
                }
                Out::SubAck { pkid, granted } => v5::Packet::SubAck(v5::SubAck {
                    pkid,
                    return_codes: granted
                        .into_iter()
                        .map(|g| match g {
                            Some(q) => v5::SubscribeReasonCode::Success(to_qos5(q)),
                            None => v5::SubscribeReasonCode::TopicFilterInvalid,
                        })
                        .collect(),
                    properties: None,
                }),
                Out::UnsubAck { pkid, filters } => v5::Packet::UnsubAck(v5::UnsubAck {
                    pkid,
                    reasons: vec![v5::UnsubAckReason::Success; filters],
                    properties: None,
                }),
                Out::PingResp => v5::Packet::PingResp(v5::PingResp),
            };
            p.write(buf, Some(MAX_PACKET as u32)).map(|_| ()).map_err(WireError::V5)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_bytes(p: v4::Packet) -> BytesMut {
        let mut b = BytesMut::new();
        p.write(&mut b, MAX_PACKET).unwrap();
        b
    }

    #[test]
    fn a_311_connect_is_read_whole_and_only_when_complete() {
        let mut c = v4::Connect::new("c1");
        c.clean_session = false;
        let full = v4_bytes(v4::Packet::Connect(c));
        let mut part = BytesMut::from(&full[..full.len() - 1]);
        assert!(read_connect(&mut part).unwrap().is_none());
        let mut buf = full.clone();
        let c = read_connect(&mut buf).unwrap().unwrap();
        assert_eq!((c.version, c.client_id.as_str(), c.clean_start), (Version::V311, "c1", false));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_5_connect_keeps_its_session_expiry() {
        let mut props = v5::ConnectProperties::new();
        props.session_expiry_interval = Some(300);
        let c = v5::Connect { keep_alive: 30, client_id: "c5".into(), clean_start: false, properties: Some(props) };
        let mut buf = BytesMut::new();
        v5::Packet::Connect(c, None, None).write(&mut buf, None).unwrap();
        let c = read_connect(&mut buf).unwrap().unwrap();
        assert_eq!((c.version, c.session_expiry_s), (Version::V5, Some(300)));
    }

    #[test]
    fn a_first_packet_other_than_connect_is_refused() {
        let mut buf = v4_bytes(v4::Packet::PingReq);
        assert!(matches!(read_connect(&mut buf), Err(WireError::NotConnect)));
        let mut garbage = BytesMut::from(&[0xF0u8, 0x00][..]);
        assert!(read_connect(&mut garbage).is_err());
    }

    #[test]
    fn answers_round_trip_through_the_codec_in_both_versions() {
        for v in [Version::V311, Version::V5] {
            let mut buf = BytesMut::new();
            write(v, Out::SubAck { pkid: 7, granted: vec![Some(1), None] }, &mut buf).unwrap();
            write(
                v,
                Out::Publish(Publish {
                    topic: "a/b".into(),
                    payload: Bytes::from_static(b"x"),
                    qos: 1,
                    retain: true,
                    pkid: 3,
                }),
                &mut buf,
            )
            .unwrap();
            match v {
                Version::V311 => {
                    assert!(
                        matches!(v4::Packet::read(&mut buf, MAX_PACKET).unwrap(), v4::Packet::SubAck(s) if s.pkid == 7)
                    );
                    assert!(
                        matches!(v4::Packet::read(&mut buf, MAX_PACKET).unwrap(), v4::Packet::Publish(p) if p.retain && p.pkid == 3)
                    );
                }
                Version::V5 => {
                    assert!(
                        matches!(v5::Packet::read(&mut buf, None).unwrap(), v5::Packet::SubAck(s) if s.return_codes.len() == 2)
                    );
                    assert!(
                        matches!(v5::Packet::read(&mut buf, None).unwrap(), v5::Packet::Publish(p) if &p.topic[..] == b"a/b")
                    );
                }
            }
        }
    }
}
