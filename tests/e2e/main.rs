//! End-to-end tests: the real server on 127.0.0.1:0, real `.wasm` plugins, real HTTP.

mod admin;
mod admin_edges;
mod blobs;
mod compat;
mod contract;
mod cors;
mod ctwing;
mod dashboard;
mod hot_reload;
mod iotstack;
mod iotstack_agent;
mod isolation;
mod metrics;
mod mxchip;
mod python_example;
mod replicas;
mod routes;
mod sandbox;
mod secrets;
mod storage;
mod ubtech;
mod xlink;
