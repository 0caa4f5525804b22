//! The `tfplugin6.Provider` service: decodes each request, hands it to the
//! framework's [`Provider`], and encodes the answer.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::framework::provider::Provider;
use crate::framework::{Diagnostics, Private};

use super::convert::{self, decode, encode};
use super::proto::tfplugin6 as pb;

pub struct ProviderService {
    pub provider: Arc<Provider>,
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(message: T) -> Reply<T> {
    Ok(Response::new(message))
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Reply<pb::get_provider_schema::Response> {
        let resource_schemas = self
            .provider
            .schemas()
            .iter()
            .map(|(name, s)| (name.to_string(), convert::schema(s)))
            .collect();
        reply(pb::get_provider_schema::Response {
            provider: Some(convert::schema(&self.provider.provider_schema())),
            resource_schemas,
            server_capabilities: Some(pb::ServerCapabilities::default()),
            ..Default::default()
        })
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Reply<pb::validate_provider_config::Response> {
        let ty = self.provider.provider_schema().block.value_type();
        let diags = match decode(request.get_ref().config.as_ref(), &ty, "provider block") {
            Ok(config) => self.provider.validate_config(&config),
            Err(diags) => diags,
        };
        reply(pb::validate_provider_config::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Reply<pb::configure_provider::Response> {
        let req = request.into_inner();
        log::info!("configured by Terraform {}", req.terraform_version);
        let ty = self.provider.provider_schema().block.value_type();
        let diags = match decode(req.config.as_ref(), &ty, "provider block") {
            Ok(config) => self.provider.configure(config),
            Err(diags) => diags,
        };
        reply(pb::configure_provider::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Reply<pb::validate_resource_config::Response> {
        let req = request.into_inner();
        let diags = match self.provider.resource(&req.type_name) {
            Err(diags) => diags,
            Ok((resource, ty)) => match decode(req.config.as_ref(), &ty, "configuration") {
                Err(diags) => diags,
                Ok(config) => {
                    let write_only_allowed = req
                        .client_capabilities
                        .is_some_and(|c| c.write_only_attributes_allowed);
                    self.provider
                        .validate(resource, &config, write_only_allowed)
                }
            },
        };
        reply(pb::validate_resource_config::Response {
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Reply<pb::upgrade_resource_state::Response> {
        let req = request.into_inner();
        let (resource, ty) = match self.provider.resource(&req.type_name) {
            Ok(found) => found,
            Err(diags) => {
                return reply(pb::upgrade_resource_state::Response {
                    upgraded_state: None,
                    diagnostics: convert::diagnostics(diags),
                })
            }
        };
        let json = req.raw_state.map(|r| r.json).unwrap_or_default();
        let (state, diags) = self.provider.upgrade(resource, &ty, req.version, &json);
        reply(pb::upgrade_resource_state::Response {
            upgraded_state: Some(encode(&state, &ty)),
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Reply<pb::read_resource::Response> {
        let req = request.into_inner();
        let failed = |diags: Diagnostics| pb::read_resource::Response {
            new_state: req.current_state.clone(),
            diagnostics: convert::diagnostics(diags),
            private: req.private.clone(),
        };
        let (resource, ty) = match self.provider.resource(&req.type_name) {
            Ok(found) => found,
            Err(diags) => return reply(failed(diags)),
        };
        let state = match decode(req.current_state.as_ref(), &ty, "current state") {
            Ok(state) => state,
            Err(diags) => return reply(failed(diags)),
        };
        let mut private = Private::decode(&req.private);
        let (new_state, diags) = self.provider.read(resource, &state, &mut private).await;
        reply(pb::read_resource::Response {
            new_state: Some(encode(&new_state, &ty)),
            diagnostics: convert::diagnostics(diags),
            private: private.encode(),
        })
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Reply<pb::plan_resource_change::Response> {
        let req = request.into_inner();
        let failed = |diags: Diagnostics| pb::plan_resource_change::Response {
            diagnostics: convert::diagnostics(diags),
            ..Default::default()
        };
        let (resource, ty) = match self.provider.resource(&req.type_name) {
            Ok(found) => found,
            Err(diags) => return reply(failed(diags)),
        };
        let decoded = decode(req.prior_state.as_ref(), &ty, "prior state").and_then(|prior| {
            let proposed = decode(req.proposed_new_state.as_ref(), &ty, "proposed new state")?;
            let config = decode(req.config.as_ref(), &ty, "configuration")?;
            Ok((prior, proposed, config))
        });
        let (prior, proposed, config) = match decoded {
            Ok(values) => values,
            Err(diags) => return reply(failed(diags)),
        };
        let (planned, diags) = self
            .provider
            .plan(resource, &prior, &proposed, &config)
            .await;
        reply(pb::plan_resource_change::Response {
            planned_state: Some(encode(&planned.state, &ty)),
            requires_replace: planned
                .requires_replace
                .iter()
                .map(convert::attribute_path)
                .collect(),
            planned_private: req.prior_private,
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Reply<pb::apply_resource_change::Response> {
        let req = request.into_inner();
        let failed = |diags: Diagnostics| pb::apply_resource_change::Response {
            new_state: req.prior_state.clone(),
            private: req.planned_private.clone(),
            diagnostics: convert::diagnostics(diags),
        };
        let (resource, ty) = match self.provider.resource(&req.type_name) {
            Ok(found) => found,
            Err(diags) => return reply(failed(diags)),
        };
        let decoded = decode(req.prior_state.as_ref(), &ty, "prior state").and_then(|prior| {
            Ok((
                prior,
                decode(req.planned_state.as_ref(), &ty, "planned state")?,
                decode(req.config.as_ref(), &ty, "configuration")?,
            ))
        });
        let (prior, planned, config) = match decoded {
            Ok(values) => values,
            Err(diags) => return reply(failed(diags)),
        };
        let mut private = Private::decode(&req.planned_private);
        let (new_state, diags) = self
            .provider
            .apply(resource, &prior, &planned, &config, &mut private)
            .await;
        reply(pb::apply_resource_change::Response {
            new_state: Some(encode(&new_state, &ty)),
            private: private.encode(),
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Reply<pb::import_resource_state::Response> {
        let req = request.into_inner();
        let (resource, ty) = match self.provider.resource(&req.type_name) {
            Ok(found) => found,
            Err(diags) => {
                return reply(pb::import_resource_state::Response {
                    imported_resources: vec![],
                    diagnostics: convert::diagnostics(diags),
                })
            }
        };
        let mut private = Private::default();
        let (state, diags) = self.provider.import(resource, &req.id, &mut private).await;
        let imported_resources = if diags.has_errors() || state.is_null() {
            vec![]
        } else {
            vec![pb::import_resource_state::ImportedResource {
                type_name: req.type_name,
                state: Some(encode(&state, &ty)),
                private: private.encode(),
            }]
        };
        reply(pb::import_resource_state::Response {
            imported_resources,
            diagnostics: convert::diagnostics(diags),
        })
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Reply<pb::stop_provider::Response> {
        log::info!("stop requested: cancelling operations in flight");
        self.provider.context.request_stop();
        reply(pb::stop_provider::Response::default())
    }
}
