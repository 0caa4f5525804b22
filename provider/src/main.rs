//! The provider binary: started by Terraform, it serves the resources over
//! the plugin protocol until Terraform shuts it down.

use std::process::ExitCode;

use terraform_provider_etcd::{plugin, resources};

#[tokio::main]
async fn main() -> ExitCode {
    plugin::logging::init();
    match plugin::serve(resources::provider()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
