//! The protobuf contracts in `proto/`, generated at build time: `trackstack.v1` messages and the gRPC `Ingest`
//! service (server and client).

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("trackstack.v1");
}
