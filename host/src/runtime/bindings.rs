//! Host-side bindings for `ota:dialect@0.1.0`, generated from `wit/v0.1`. Every import is
//! async because the host implementations talk to the database.

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "dialect",
    imports: { default: async },
    exports: { default: async },
});

pub use ota::dialect::types::{CredentialScheme, DeviceRef, HostError, Principal, Route};
