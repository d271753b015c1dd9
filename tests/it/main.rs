//! Integration tests: real nodes (RocksDB, openraft, gRPC on loopback), in this process or
//! as `mnema` processes. One binary so the suite links once.

mod harness;

mod backup;
mod catalog;
mod cluster;
mod discovery;
mod docs;
mod durability;
mod engine_ops;
mod feeds;
mod indexes;
mod integrity;
mod layering;
mod members;
mod membership;
mod observe;
mod processes;
mod reads;
mod replicants;
mod shards;
mod tables;
mod transport;
mod upgrade;
