//! The broker's MQTT adapter (`broker/src/mqtt.rs`, over rumqttc's 3.1.1 and 5.0 codecs):
//! any bytes from a client end in a packet, "read more" or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The adapter has no dependency on mnema: it is built here from its source, so this
// target needs neither RocksDB nor the broker's other modules.
#[path = "../../broker/src/mqtt.rs"]
#[allow(dead_code)]
mod mqtt;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    let Ok(Some(connect)) = mqtt::read_connect(&mut buf) else { return };
    while let Ok(Some(_)) = mqtt::read(connect.version, &mut buf) {}
});
