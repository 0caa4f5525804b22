//! The go-plugin services every plugin serves beside its protocol:
//! `GRPCController.Shutdown` (clean exit), `GRPCStdio` (our output goes to
//! stderr as log lines, so the stream stays open and silent) and
//! `GRPCBroker` (no sub-plugins, so the stream stays open and silent).

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::plugin as pb;

type Silent<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct Controller {
    pub shutdown: Arc<Notify>,
}

#[tonic::async_trait]
impl pb::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _request: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        log::debug!("shutdown requested by Terraform");
        self.shutdown.notify_one();
        Ok(Response::new(pb::Empty {}))
    }
}

pub struct Stdio;

#[tonic::async_trait]
impl pb::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = Silent<pb::StdioData>;

    async fn stream_stdio(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

pub struct Broker;

#[tonic::async_trait]
impl pb::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = Silent<pb::ConnInfo>;

    async fn start_stream(
        &self,
        _request: Request<Streaming<pb::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}
