//! The gRPC `trackstack.v1.Ingest` service: the same batches as `POST /api/v1/ingest`, one per call (`Write`)
//! or many on a client stream (`Push`).

use tonic::{Request, Response, Status, Streaming};
use trackstack_domain::Error;
use trackstack_proto::v1 as pb;
use trackstack_proto::v1::ingest_server::{Ingest, IngestServer};

use crate::batch::IngestBatch;
use crate::IngestService;

/// gRPC messages up to this size are accepted (a full batch of 100,000 points is about 2.5 MB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The gRPC routes, ready to merge into the server's router (gRPC shares the HTTP port).
pub fn router(service: IngestService) -> axum::Router {
    let server = IngestServer::new(IngestGrpc { service })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
    tonic::service::Routes::new(server).into_axum_router()
}

struct IngestGrpc {
    service: IngestService,
}

impl IngestGrpc {
    async fn apply(&self, batch: pb::IngestBatch) -> Result<u64, Status> {
        let batch = IngestBatch::try_from(batch).map_err(status)?;
        let ack = self.service.ingest(batch).await.map_err(status)?;
        Ok(ack.accepted_points as u64)
    }
}

#[tonic::async_trait]
impl Ingest for IngestGrpc {
    async fn write(&self, request: Request<pb::IngestBatch>) -> Result<Response<pb::IngestAck>, Status> {
        let accepted_points = self.apply(request.into_inner()).await?;
        Ok(Response::new(pb::IngestAck { accepted_points }))
    }

    async fn push(&self, request: Request<Streaming<pb::IngestBatch>>) -> Result<Response<pb::IngestAck>, Status> {
        let mut stream = request.into_inner();
        let mut accepted_points = 0;
        while let Some(batch) = stream.message().await? {
            accepted_points += self.apply(batch).await?;
        }
        Ok(Response::new(pb::IngestAck { accepted_points }))
    }
}

/// The error table's gRPC code, with the field named in the message and in `trackstack-field` metadata.
pub fn status(error: Error) -> Status {
    let code = tonic::Code::from_i32(error.code.grpc_code());
    let message = match &error.field {
        Some(field) => format!("{field}: {}", error.message),
        None => error.message.clone(),
    };
    let mut status = Status::new(code, message);
    if let Some(field) = error.field.as_deref().and_then(|f| f.parse().ok()) {
        status.metadata_mut().insert("trackstack-field", field);
    }
    status
}
