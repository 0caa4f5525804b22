//! A Terraform working directory for one test, with the built provider
//! installed either through a filesystem mirror (as a user who installs a
//! release would) or through `dev_overrides` (as a provider developer would).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::tools;

/// The provider's source address as the examples declare it.
pub const PROVIDER_SOURCE: &str = "terraform-provider-etcd/etcd";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// The built binary in a filesystem mirror (unpacked layout).
    FilesystemMirror,
    /// `dev_overrides` pointing at the built binary; no `init`.
    DevOverrides,
    /// A release archive (`provider/release`) in a filesystem mirror in
    /// the packed layout.
    PackedMirror(PathBuf),
    /// A release archive in the working directory's `terraform.d/plugins`,
    /// which Terraform searches without any `provider_installation`.
    ImpliedLocalDirectory(PathBuf),
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub terraform: PathBuf,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
}

/// What a terraform command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A finished terraform command (one from [`Workspace::spawn`], say).
impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The text with whitespace collapsed: Terraform wraps the lines of a
    /// diagnostic wherever the terminal width falls.
    pub fn words(&self) -> String {
        self.text().split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Workspace {
    /// A directory holding `main_tf`, with the provider installed by `install`.
    pub fn new(terraform: &Path, install: Install, main_tf: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("tfacc-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("main.tf"), main_tf).expect("write main.tf");
        let cli_config = dir.path().join("terraformrc");
        let ws = Workspace {
            dir,
            terraform: terraform.to_path_buf(),
            cli_config,
            env: Vec::new(),
        };
        let binary = tools::provider_binary();
        let packed = |root: &Path, archive: &Path| {
            let dir = root.join(ws.full_provider_address());
            std::fs::create_dir_all(&dir).expect("mirror dir");
            std::fs::copy(archive, dir.join(archive.file_name().unwrap()))
                .expect("copy the release archive");
        };
        let config = match &install {
            Install::DevOverrides => format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{PROVIDER_SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                binary.parent().unwrap().display()
            ),
            Install::FilesystemMirror => {
                let mirror = ws.path().join("mirror");
                let address = ws.full_provider_address();
                let version = env!("CARGO_PKG_VERSION");
                let platform = mirror.join(&address).join(version).join("linux_amd64");
                std::fs::create_dir_all(&platform).expect("mirror dir");
                std::fs::copy(&binary, platform.join(format!("terraform-provider-etcd_v{version}")))
                    .expect("copy provider into mirror");
                format!(
                    "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
                    mirror.display()
                )
            }
            Install::PackedMirror(archive) => {
                let mirror = ws.path().join("mirror");
                packed(&mirror, archive);
                format!(
                    "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
                    mirror.display()
                )
            }
            Install::ImpliedLocalDirectory(archive) => {
                packed(&ws.path().join("terraform.d").join("plugins"), archive);
                String::new()
            }
        };
        std::fs::write(&ws.cli_config, config).expect("write CLI config");
        if install != Install::DevOverrides {
            ws.run_ok(&["init", "-input=false"]);
        }
        ws
    }

    /// Writes `terraform.tfvars` from (name, HCL value) pairs.
    pub fn set_vars(&self, vars: &[(&str, String)]) {
        let text: String = vars.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(self.path().join("terraform.tfvars"), text).expect("write terraform.tfvars");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the provider as if it were `hours` later than now
    /// (`ETCD_PROVIDER_FAKE_NOW`) in every later terraform command, until
    /// [`Workspace::reset_clock`].
    pub fn set_clock_ahead(&mut self, hours: i64) {
        let later = time::OffsetDateTime::now_utc() + time::Duration::hours(hours);
        let later = later
            .format(&time::format_description::well_known::Rfc3339)
            .expect("an RFC 3339 time");
        self.set_env("ETCD_PROVIDER_FAKE_NOW", &later);
    }

    /// The provider on the real clock again.
    pub fn reset_clock(&mut self) {
        self.remove_env("ETCD_PROVIDER_FAKE_NOW");
    }

    /// `plan -detailed-exitcode` exits 2 and says `what` exactly `times`
    /// times (once per member, say).
    pub fn plan_saying(&self, what: &str, times: usize) -> Run {
        let (code, run) = self.plan_exit_code();
        assert_eq!(code, 2, "{}", run.text());
        assert_eq!(run.stdout.matches(what).count(), times, "{}", run.stdout);
        run
    }

    /// Adds an environment variable for every later terraform command.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// The provider's full address (host/namespace/type), as Terraform
    /// resolves the examples' source; read from `terraform providers`.
    fn full_provider_address(&self) -> String {
        let out = self.run(&["providers"]);
        let start = out
            .stdout
            .find("provider[")
            .expect("terraform providers lists the provider")
            + "provider[".len();
        let end = out.stdout[start..].find(']').expect("closing bracket") + start;
        out.stdout[start..end].to_string()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.terraform);
        cmd.args(args)
            .current_dir(self.path())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("NO_COLOR", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_CLI_ARGS");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        if !matches!(
            args.first(),
            Some(&"providers" | &"output" | &"show" | &"state" | &"version")
        ) {
            all.push("-no-color");
        }
        Run::from(self.command(&all).output().expect("run terraform"))
    }

    /// Runs a command that must succeed.
    pub fn run_ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "terraform {args:?} failed:\n{}", run.text());
        run
    }

    pub fn apply(&self) -> Run {
        self.run_ok(&["apply", "-auto-approve", "-input=false"])
    }

    /// Applies only the given resource addresses.
    pub fn apply_targets(&self, targets: &[&str]) -> Run {
        let mut args = vec![
            "apply".to_string(),
            "-auto-approve".into(),
            "-input=false".into(),
        ];
        args.extend(targets.iter().map(|t| format!("-target={t}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_ok(&args)
    }

    pub fn destroy(&self) -> Run {
        self.run_ok(&["destroy", "-auto-approve", "-input=false"])
    }

    /// Applies, prints how long it took (for the issue notes' figures, never
    /// asserted), and checks that the next plan is empty.
    pub fn apply_timed(&self, what: &str) {
        let started = std::time::Instant::now();
        self.apply();
        eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
        assert_eq!(
            self.plan_exit_code().0,
            0,
            "{what}: plan after apply is not empty"
        );
    }

    /// Starts `terraform apply` in the background.
    pub fn spawn_apply(&self) -> std::process::Child {
        self.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// Starts a terraform command in the background, its output captured.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start terraform")
    }

    /// `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan_exit_code(&self) -> (i32, Run) {
        let run = self.run(&["plan", "-detailed-exitcode", "-input=false"]);
        (run.code, run)
    }

    /// Replaces the CA at `address` as users do: an apply with `-replace`
    /// (the members trust both CAs and take certificates from the new one),
    /// which must leave the second stage planned, then the apply of that
    /// stage (the old CA retired).
    pub fn replace_ca_in_two_applies(&self, address: &str) {
        let replace = format!("-replace={address}");
        self.run_ok(&["apply", "-auto-approve", "-input=false", &replace]);
        let (code, run) = self.plan_exit_code();
        assert_eq!(code, 2, "the second stage is not planned:\n{}", run.text());
        self.apply();
    }

    /// A string output of the root module.
    pub fn output(&self, name: &str) -> String {
        let run = self.run_ok(&["output", "-json", name]);
        match serde_json::from_str::<serde_json::Value>(&run.stdout).expect("output is JSON") {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// `terraform state show`-style JSON of the whole state.
    pub fn state_json(&self) -> serde_json::Value {
        let run = self.run_ok(&["show", "-json"]);
        serde_json::from_str(&run.stdout).expect("state is JSON")
    }

    /// A resource's values in `terraform show -json`, by address.
    pub fn resource_values(&self, address: &str) -> serde_json::Value {
        let state = self.state_json();
        state["values"]["root_module"]["resources"]
            .as_array()
            .expect("resources in state")
            .iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("{address} is not in the state"))["values"]
            .clone()
    }

    pub fn version(&self) -> String {
        self.run_ok(&["version"])
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Ctrl-C to a running apply or plan, as a user would (Terraform then
/// calls StopProvider); the command must fail. Returns its output.
pub fn interrupt(apply: std::process::Child) -> String {
    assert!(std::process::Command::new("kill")
        .args(["-INT", &apply.id().to_string()])
        .status()
        .expect("run kill")
        .success());
    let out = apply.wait_with_output().expect("wait for terraform");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the interrupted command succeeded:\n{text}"
    );
    text
}

/// A string as an HCL literal.
pub fn hcl_string(s: impl AsRef<str>) -> String {
    serde_json::Value::String(s.as_ref().to_string()).to_string()
}

/// A list of strings as an HCL literal.
pub fn hcl_list(items: &[&str]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}

/// The text of an example configuration, e.g. `example("ca")`.
pub fn example(name: &str) -> String {
    let path = tools::repo_root()
        .join("examples")
        .join(name)
        .join("main.tf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
