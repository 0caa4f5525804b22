//! Whole-cluster operations over SSH and the etcd API: bootstrap, observe
//! (for drift), repair and teardown. Changes to a running cluster go one
//! member at a time and wait for the cluster to be healthy in between.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::etcd::{self, Credentials};
use crate::framework::Context;
use crate::member::install::{self, Fingerprints, LocalBinaries};
use crate::member::render::InitialState;
use crate::member::{inspect, BinarySource, ClusterSettings, MemberSpec};
use crate::ssh::{Host, SshError};

/// The status of a member that is as it should be.
pub const HEALTHY: &str = "healthy";

/// A cluster as the configuration describes it.
pub struct ClusterSpec {
    pub settings: ClusterSettings,
    pub members: Vec<MemberSpec>,
    /// The CA the members' certificates are issued from.
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// The CA certificates the members trust (their `ca.crt`): `ca_cert_pem`,
    /// or the old and the new CA together during a CA rotation.
    pub trusted_ca_pem: String,
    /// Reach the client API through SSH port forwards instead of directly.
    pub tunnel: bool,
    /// Client URLs of members the configuration does not own (the cluster
    /// an `etcd_member` joins), asked after the managed members. Empty for
    /// `etcd_cluster`, which owns every member: a live member it does not
    /// list is unmanaged and is removed.
    pub foreign_endpoints: Vec<String>,
    /// A snapshot file on the machine running Terraform that the members of
    /// a new cluster start from (each member's data is restored from it).
    pub initial_snapshot: Option<String>,
}

/// The cluster's client API, with the SSH connections that carry it when
/// it is tunnelled (they close when this is dropped).
pub struct Api {
    pub cluster: etcd::Cluster,
    _tunnels: Vec<Host>,
}

impl std::ops::Deref for Api {
    type Target = etcd::Cluster;

    fn deref(&self) -> &etcd::Cluster {
        &self.cluster
    }
}

/// A free local port for a forward (the OS picks it; it is released just
/// before ssh binds it).
fn free_local_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free local port for a tunnel: {e}"))
}

/// What the provider saw of a running cluster.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    pub cluster_id: Option<u64>,
    /// Member name to its ID (hex), for members in the live list.
    pub member_ids: BTreeMap<String, String>,
    /// Member name to the etcd version it reports, for members that answer.
    pub versions: BTreeMap<String, String>,
    /// Member name to `healthy` or what is wrong with it.
    pub status: BTreeMap<String, String>,
    /// Members whose endpoint answers a quorum read: restarting one of
    /// these takes a serving member away for a moment.
    pub serving: BTreeSet<String>,
    /// Live members the configuration does not have, as `name (id)`.
    pub unmanaged: Vec<String>,
    pub leader: Option<String>,
    /// Things worth a warning: unreachable hosts or endpoints.
    pub warnings: Vec<String>,
    /// The managed files found on each reachable host, by member name.
    pub files: BTreeMap<String, Fingerprints>,
}

impl Observed {
    pub fn all_healthy(&self) -> bool {
        self.status.values().all(|s| s == HEALTHY) && self.unmanaged.is_empty()
    }
}

impl ClusterSpec {
    /// The same cluster with another set of members (a step of a change).
    fn with_members(&self, members: Vec<MemberSpec>) -> ClusterSpec {
        ClusterSpec {
            settings: self.settings.clone(),
            members,
            ca_cert_pem: self.ca_cert_pem.clone(),
            ca_key_pem: self.ca_key_pem.clone(),
            trusted_ca_pem: self.trusted_ca_pem.clone(),
            tunnel: self.tunnel,
            foreign_endpoints: self.foreign_endpoints.clone(),
            initial_snapshot: self.initial_snapshot.clone(),
        }
    }

    /// The same cluster with its certificates issued from another CA and
    /// another set of trusted CAs (a step of a CA rotation).
    pub fn with_ca(&self, cert_pem: &str, key_pem: &str, trusted_pem: &str) -> ClusterSpec {
        ClusterSpec {
            ca_cert_pem: cert_pem.to_string(),
            ca_key_pem: key_pem.to_string(),
            trusted_ca_pem: trusted_pem.to_string(),
            ..self.with_members(self.members.clone())
        }
    }

    /// etcd has learners (non-voting members that catch up first) from 3.4 on.
    fn has_learners(&self) -> bool {
        let mut parts = self
            .settings
            .etcd_version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (3, 4)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.client_url(&self.settings))
            .collect()
    }

    fn initial_cluster(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url(&self.settings)))
            .collect()
    }

    /// The client API, directly or, with `tunnel`, through one SSH port
    /// forward per member to its loopback client URL (which its server
    /// certificate names). A member whose SSH fails keeps its direct URL
    /// and shows up as unreachable.
    pub async fn api(&self, now: OffsetDateTime) -> Result<Api, String> {
        let credentials = self.credentials(now)?;
        if !self.tunnel {
            let mut endpoints = self.endpoints();
            endpoints.extend(self.foreign_endpoints.iter().cloned());
            return Ok(Api {
                cluster: etcd::Cluster::new(endpoints, credentials),
                _tunnels: Vec::new(),
            });
        }
        let port = self.settings.client_port;
        let opened = futures::future::join_all(self.members.iter().map(|m| async move {
            let host = Host::connect(&m.ssh).await.map_err(|e| e.to_string())?;
            let local = free_local_port()?;
            host.forward_local(local, "127.0.0.1", port)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((host, format!("https://127.0.0.1:{local}")))
        }))
        .await;
        let mut endpoints = Vec::new();
        let mut tunnels = Vec::new();
        for (opened, direct) in opened.into_iter().zip(self.endpoints()) {
            match opened {
                Ok((host, endpoint)) => {
                    tunnels.push(host);
                    endpoints.push(endpoint);
                }
                Err(e) => {
                    log::warn!("no tunnel to {direct}: {e}");
                    endpoints.push(direct);
                }
            }
        }
        endpoints.extend(self.foreign_endpoints.iter().cloned());
        Ok(Api {
            cluster: etcd::Cluster::new(endpoints, credentials),
            _tunnels: tunnels,
        })
    }

    /// A client identity for this run, issued from the CA.
    pub fn credentials(&self, now: OffsetDateTime) -> Result<Credentials, String> {
        Credentials::issue(&self.ca_cert_pem, &self.ca_key_pem, now)
            .map(|c| c.trusting(&self.trusted_ca_pem))
            .map_err(|e| format!("client certificate: {e}"))
    }

    pub fn local_binaries(&self) -> Result<Option<LocalBinaries>, String> {
        match &self.settings.binary_source {
            BinarySource::LocalPath(dir) => LocalBinaries::load(dir).map(Some),
            BinarySource::Url { .. } | BinarySource::OsPackage => Ok(None),
        }
    }
}

async fn connect_all(members: &[MemberSpec]) -> Vec<Result<Host, SshError>> {
    futures::future::join_all(members.iter().map(|m| Host::connect(&m.ssh))).await
}

/// Installs one member and starts it without waiting for it. A member of a
/// new cluster with an initial snapshot gets its data restored from it.
async fn install_and_start(
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
    binaries: Option<&LocalBinaries>,
    initial_cluster: &[String],
    state: InitialState,
    now: OffsetDateTime,
) -> Result<Fingerprints, String> {
    let settings = &spec.settings;
    let has_data = install::prepare(host, settings)
        .await
        .map_err(|e| e.to_string())?;
    if has_data && state == InitialState::New {
        // Only data of this very cluster (an earlier, interrupted bootstrap)
        // may be resumed; anything else is someone's data: never touch it.
        let config = host
            .run(&format!(
                "cat {} 2>/dev/null",
                crate::ssh::quote(&settings.layout.config_file())
            ))
            .await;
        let ours = config.map(|o| {
            o.stdout
                .contains(&format!("initial-cluster-token: \"{}\"", settings.token))
        });
        if ours != Ok(true) {
            return Err(format!(
                "{} already holds etcd data not made by this cluster; refusing to bootstrap over it \
                 (move it away or choose another data_dir)",
                settings.layout.data_dir
            ));
        }
    }
    install::install_binaries(host, settings, binaries)
        .await
        .map_err(|e| e.to_string())?;
    let certs = install::issue_certificates(
        member,
        settings,
        &spec.ca_cert_pem,
        &spec.ca_key_pem,
        &spec.trusted_ca_pem,
        now,
    )
    .map_err(|e| format!("certificates: {e}"))?;
    let prints = install::write_files(host, member, settings, &certs, initial_cluster, state)
        .await
        .map_err(|e| e.to_string())?;
    if let (Some(path), InitialState::New, false) = (&spec.initial_snapshot, state, has_data) {
        let snapshot = tokio::fs::read(path)
            .await
            .map_err(|e| format!("initial snapshot {path}: {e}"))?;
        install::restore_snapshot(host, member, settings, &snapshot, initial_cluster)
            .await
            .map_err(|e| e.to_string())?;
    }
    install::start(host).await.map_err(|e| e.to_string())?;
    Ok(prints)
}

/// Bootstraps every member in parallel with `initial-cluster-state=new`,
/// then waits until the member list is complete and every endpoint is
/// healthy. Safe to run again after a failure: it resumes.
pub async fn bootstrap(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
) -> Result<BTreeMap<String, Fingerprints>, String> {
    let now = ctx.now();
    let binaries = spec.local_binaries()?;
    let hosts = connect_all(&spec.members).await;
    let initial_cluster = spec.initial_cluster();
    let installs = spec.members.iter().zip(&hosts).map(|(member, host)| {
        let binaries = binaries.as_ref();
        let initial_cluster = &initial_cluster;
        async move {
            let host = host
                .as_ref()
                .map_err(|e| format!("member {}: {e}", member.name))?;
            install_and_start(
                spec,
                member,
                host,
                binaries,
                initial_cluster,
                InitialState::New,
                now,
            )
            .await
            .map(|prints| (member.name.clone(), prints))
            .map_err(|e| format!("member {}: {e}", member.name))
        }
    });
    let results = futures::future::join_all(installs).await;
    close_all(hosts).await;
    let mut fingerprints = BTreeMap::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((name, prints)) => {
                fingerprints.insert(name, prints);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    log::info!(
        "started {} members of {}; waiting for them to form the cluster",
        spec.members.len(),
        spec.settings.token
    );
    wait_until_healthy(ctx, spec, timeout).await?;
    Ok(fingerprints)
}

async fn close_all(hosts: Vec<Result<Host, SshError>>) {
    futures::future::join_all(hosts.into_iter().flatten().map(Host::close)).await;
}

/// Waits until every configured member is a started voting member and
/// healthy. On time-out, names the members that are late and why.
pub async fn wait_until_healthy(
    ctx: &Context,
    spec: &ClusterSpec,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let api = spec.api(ctx.now()).await?;
    loop {
        let late = tokio::select! {
            late = late_members(spec, &api) => late,
            _ = ctx.stopped() => return Err("stopped by Terraform before the cluster was healthy".into()),
        };
        if late.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the cluster was not healthy within {timeout:?}; late: {}",
                late.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Members that are not yet started, voting and healthy, with the reason.
async fn late_members(spec: &ClusterSpec, api: &etcd::Cluster) -> Vec<String> {
    let listed = api.members().await;
    let statuses = api.statuses().await;
    spec.members
        .iter()
        .zip(statuses)
        .filter_map(|(member, status)| {
            let problem = match &listed {
                Err(e) => Some(format!("member list unavailable ({e})")),
                Ok((_, live)) => match live.iter().find(|m| m.name == member.name) {
                    None => Some("not started".to_string()),
                    Some(m) if m.is_learner => Some("still a learner".to_string()),
                    Some(_) if !status.healthy => {
                        Some(status.error.clone().unwrap_or_else(|| "unhealthy".into()))
                    }
                    Some(_) => None,
                },
            };
            problem.map(|p| format!("{} ({}): {p}", member.name, member.host))
        })
        .collect()
}

/// Looks at the live cluster and every member host. Never fails: what
/// cannot be reached is reported in the statuses and as a warning.
pub async fn observe(
    ctx: &Context,
    spec: &ClusterSpec,
    expected: &BTreeMap<String, Fingerprints>,
) -> Observed {
    let mut observed = Observed::default();
    let api = match spec.api(ctx.now()).await {
        Ok(api) => api,
        Err(e) => {
            observed.warnings.push(e.clone());
            for m in &spec.members {
                observed
                    .status
                    .insert(m.name.clone(), format!("unreachable: {e}"));
            }
            return observed;
        }
    };
    let (listed, statuses, host_states) = tokio::join!(
        api.members(),
        api.statuses(),
        futures::future::join_all(spec.members.iter().map(|m| async {
            let host = Host::connect(&m.ssh).await?;
            let state = inspect::observe(&host, &spec.settings).await;
            host.close().await;
            state
        }))
    );
    let live = match listed {
        Ok((cluster_id, live)) => {
            observed.cluster_id = Some(cluster_id);
            Some(live)
        }
        Err(e) => {
            observed
                .warnings
                .push(format!("no member of the cluster answered: {e}"));
            None
        }
    };
    for ((member, status), host_state) in spec.members.iter().zip(&statuses).zip(host_states) {
        if let Some(version) = &status.version {
            observed
                .versions
                .insert(member.name.clone(), version.clone());
        }
        if status.healthy {
            observed.serving.insert(member.name.clone());
        }
        let mut problems = Vec::new();
        match &host_state {
            Err(e) => {
                observed
                    .warnings
                    .push(format!("member {}: {e}", member.name));
                problems.push(format!("unreachable over SSH: {e}"));
            }
            Ok(state) => {
                // A member imported from elsewhere has no fingerprints yet:
                // its files as first seen become the baseline.
                let expected = expected.get(&member.name).unwrap_or(&state.files);
                problems.extend(inspect::differences(expected, state));
                let renew_from = time::Duration::hours(spec.settings.cert_early_renewal_hours);
                if let Some(end) = crate::pki::not_after(&state.server_cert_pem) {
                    if ctx.now() >= end - renew_from {
                        let end = end
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default();
                        problems.push(format!("certificates expire {end}: due for renewal"));
                    }
                }
                observed
                    .files
                    .insert(member.name.clone(), state.files.clone());
            }
        }
        let peer_url = member.peer_url(&spec.settings);
        if let Some(live) = &live {
            match live.iter().find(|m| m.peer_urls.contains(&peer_url)) {
                Some(m) => {
                    observed
                        .member_ids
                        .insert(member.name.clone(), etcd::format_id(m.id));
                    if m.is_learner {
                        problems.push("is a learner".into());
                    }
                }
                None => problems.push("not a member of the cluster".into()),
            }
        }
        if !status.healthy && problems.is_empty() {
            problems.push(format!(
                "unhealthy: {}",
                status.error.clone().unwrap_or_default()
            ));
        }
        let text = if problems.is_empty() {
            HEALTHY.to_string()
        } else {
            problems.join("; ")
        };
        observed.status.insert(member.name.clone(), text);
    }
    if let Some(live) = &live {
        let configured: Vec<String> = spec
            .members
            .iter()
            .map(|m| m.peer_url(&spec.settings))
            .collect();
        // Members of a cluster the configuration does not own are not unmanaged.
        let owned = spec.foreign_endpoints.is_empty();
        for m in live
            .iter()
            .filter(|m| owned && !m.peer_urls.iter().any(|u| configured.contains(u)))
        {
            observed.unmanaged.push(format!(
                "{} ({})",
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    &m.name
                },
                etcd::format_id(m.id)
            ));
        }
        let leader = statuses.iter().find_map(|s| s.leader.filter(|l| *l != 0));
        observed.leader = leader
            .and_then(|id| live.iter().find(|m| m.id == id))
            .map(|m| m.name.clone());
    }
    observed
}

/// Brings drifted members back, one at a time, waiting for a healthy
/// cluster after each: restarts stopped members, rewrites changed files,
/// re-adds members removed out of band, and removes unmanaged members.
pub async fn repair(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
) -> Result<(), String> {
    let binaries = spec.local_binaries()?;
    let api = spec.api(ctx.now()).await?;
    for member in &spec.members {
        let observed = observe(ctx, spec, fingerprints).await;
        if !observed.unmanaged.is_empty() {
            remove_unmanaged(ctx, spec, &api, timeout).await?;
        }
        let status = observed
            .status
            .get(&member.name)
            .cloned()
            .unwrap_or_default();
        if status == HEALTHY {
            continue;
        }
        if ctx.is_stopped() {
            return Err("stopped by Terraform; the next apply continues the repair".into());
        }
        log::info!("repairing member {}: {status}", member.name);
        let removed = status.contains("not a member of the cluster");
        // Re-adding changes the membership, and restarting a member that
        // still serves takes it away for a moment: both only while every
        // other member is healthy. A member that does not serve can always
        // be brought back.
        if removed || observed.serving.contains(&member.name) {
            ensure_others_healthy(spec, &api, &observed, member).await?;
        }
        let host = Host::connect(&member.ssh)
            .await
            .map_err(|e| format!("member {}: {e}", member.name))?;
        let result = async {
            let prints = if removed {
                let prints = readd(ctx, spec, &api, member, &host, binaries.as_ref()).await?;
                host.run_ok("systemctl restart --no-block etcd")
                    .await
                    .map_err(|e| e.to_string())?;
                prints
            } else {
                rewrite_and_restart(ctx, spec, member, &host, binaries.as_ref()).await?
            };
            Ok::<_, String>(prints)
        }
        .await;
        host.close().await;
        fingerprints.insert(
            member.name.clone(),
            result.map_err(|e| format!("member {}: {e}", member.name))?,
        );
        wait_until_healthy(ctx, spec, timeout).await?;
    }
    if !observe(ctx, spec, fingerprints).await.unmanaged.is_empty() {
        remove_unmanaged(ctx, spec, &api, timeout).await?;
    }
    Ok(())
}

/// Refuses a step on `member` (a restart, a membership change) unless
/// every other member serves (answers a quorum read as a voting member):
/// the configured ones as `observed` saw them and, in a cluster the
/// configuration does not own, every other live member by its own
/// endpoint. Drift that does not stop a member serving (a changed file, a
/// certificate due for renewal) does not block the step.
pub async fn ensure_others_healthy(
    spec: &ClusterSpec,
    api: &etcd::Cluster,
    observed: &Observed,
    member: &MemberSpec,
) -> Result<(), String> {
    let mut unhealthy: Vec<String> = spec
        .members
        .iter()
        .filter(|m| m.name != member.name && !observed.serving.contains(&m.name))
        .map(|m| {
            let status = observed
                .status
                .get(&m.name)
                .map_or("unknown", String::as_str);
            format!("{} ({status})", m.name)
        })
        .collect();
    if !spec.foreign_endpoints.is_empty() {
        unhealthy.extend(
            api.unhealthy_members(&member.peer_url(&spec.settings))
                .await?,
        );
    }
    if unhealthy.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "member {}: refusing to restart, add or remove it while other members are not healthy \
             (that could lose quorum): {}",
            member.name,
            unhealthy.join("; ")
        ))
    }
}

/// The initial cluster for `joining`: the started members of the live
/// cluster and `joining` itself.
fn joining_cluster(
    live: &[etcd::Member],
    joining: &MemberSpec,
    settings: &ClusterSettings,
) -> Vec<String> {
    let own = joining.peer_url(settings);
    let mut initial: Vec<String> = live
        .iter()
        .filter(|m| !m.name.is_empty() && !m.peer_urls.contains(&own))
        .map(|m| {
            format!(
                "{}={}",
                m.name,
                m.peer_urls.first().cloned().unwrap_or_default()
            )
        })
        .collect();
    initial.push(format!("{}={own}", joining.name));
    initial
}

/// Rewrites a running member's files from the spec (certificates
/// reissued) and restarts it. The initial cluster it names is the
/// configured one: etcd ignores it for a member that has its data.
pub async fn rewrite_and_restart(
    ctx: &Context,
    spec: &ClusterSpec,
    member: &MemberSpec,
    host: &Host,
    binaries: Option<&LocalBinaries>,
) -> Result<Fingerprints, String> {
    let prints = install_and_start(
        spec,
        member,
        host,
        binaries,
        &spec.initial_cluster(),
        InitialState::Existing,
        ctx.now(),
    )
    .await?;
    host.run_ok("systemctl restart --no-block etcd")
        .await
        .map_err(|e| e.to_string())?;
    Ok(prints)
}

/// Applies changed settings (flags, metrics URL, a new etcd version) one
/// member at a time, each only while every other member serves: rewrite,
/// restart, then wait until the cluster is healthy and the member runs the
/// new version before the next. A member
/// whose configuration file, trusted CA file and version already match is
/// skipped, so an interrupted roll continues where it stopped.
pub async fn roll(
    ctx: &Context,
    spec: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
) -> Result<(), String> {
    let binaries = spec.local_binaries()?;
    for (index, member) in spec.members.iter().enumerate() {
        if ctx.is_stopped() {
            return Err("stopped by Terraform; the next apply continues the rolling change".into());
        }
        let observed = observe(ctx, spec, fingerprints).await;
        let status = observed.status.get(&member.name);
        if status.is_some_and(|s| s.contains("not a member of the cluster")) {
            // Re-added by the repair that follows, with the new settings.
            continue;
        }
        let desired = crate::member::render::config_file(
            member,
            &spec.settings,
            &spec.initial_cluster(),
            InitialState::Existing,
        );
        let on_host = |file: &str| {
            observed
                .files
                .get(&member.name)
                .and_then(|f| f.get(file))
                .cloned()
        };
        let version = observed.versions.get(&member.name);
        let host = Host::connect(&member.ssh)
            .await
            .map_err(|e| format!("member {}: {e}", member.name))?;
        if on_host("config") == Some(install::sha256_hex(desired.as_bytes()))
            && on_host("ca.crt") == Some(install::sha256_hex(spec.trusted_ca_pem.as_bytes()))
            && version == Some(&spec.settings.etcd_version)
            && started_after_config(&host, spec).await
        {
            host.close().await;
            continue;
        }
        let api = spec.api(ctx.now()).await?;
        if let Err(e) = ensure_others_healthy(spec, &api, &observed, member).await {
            host.close().await;
            return Err(format!("rolling change paused: {e}"));
        }
        log::info!("rolling member {} to the new settings", member.name);
        let rolled = rewrite_and_restart(ctx, spec, member, &host, binaries.as_ref()).await;
        host.close().await;
        fingerprints.insert(
            member.name.clone(),
            rolled.map_err(|e| format!("member {}: {e}", member.name))?,
        );
        wait_until_healthy(ctx, spec, timeout).await?;
        // Only this member's endpoint, in the same order as the members.
        let running = api.endpoint_status(&api.endpoints[index]).await.version;
        if running.as_ref() != Some(&spec.settings.etcd_version) {
            return Err(format!(
                "member {} runs {} after its restart, not {}",
                member.name,
                running.as_deref().unwrap_or("nothing"),
                spec.settings.etcd_version
            ));
        }
    }
    Ok(())
}

/// How far a member is through a CA rotation, judged from the trusted CA
/// file and the issuer of the server certificate on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RotationStep {
    /// Trusts the old CA only.
    TrustsOld,
    /// Trusts both CAs; its certificates are from the old one.
    TrustsBoth,
    /// Trusts both CAs; its certificates are from the new one.
    NewCertificates,
    /// Trusts the new CA only: done.
    TrustsNew,
}

fn rotation_step(host: &inspect::HostState, new_ca: &str, both: &str) -> RotationStep {
    let trusted = host.files.get("ca.crt").map(String::as_str);
    let new_certificates = crate::pki::issued_by(&host.server_cert_pem, new_ca);
    if new_certificates && trusted == Some(&install::sha256_hex(new_ca.as_bytes())) {
        RotationStep::TrustsNew
    } else if new_certificates {
        RotationStep::NewCertificates
    } else if trusted == Some(&install::sha256_hex(both.as_bytes())) {
        RotationStep::TrustsBoth
    } else {
        RotationStep::TrustsOld
    }
}

/// Moves every member from the CA of `from` to the CA of `to` so that no
/// two members ever distrust each other: all members first trust both CAs,
/// then get certificates from the new CA, then stop trusting the old one.
/// Each of the three passes goes one member at a time (rewrite, restart,
/// wait for a healthy cluster) and starts only while every member is
/// healthy; a member already past a pass (an interrupted rotation) is
/// skipped, so the next apply continues where this one stopped.
pub async fn rotate_ca(
    ctx: &Context,
    from: &ClusterSpec,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
) -> Result<(), String> {
    let (old, new) = (&from.ca_cert_pem, &to.ca_cert_pem);
    let both = format!("{}\n{}\n", new.trim_end(), old.trim_end());
    let passes = [
        (
            RotationStep::TrustsBoth,
            to.with_ca(old, &from.ca_key_pem, &both),
        ),
        (
            RotationStep::NewCertificates,
            to.with_ca(new, &to.ca_key_pem, &both),
        ),
        (
            RotationStep::TrustsNew,
            to.with_ca(new, &to.ca_key_pem, new),
        ),
    ];
    let binaries = to.local_binaries()?;
    for (step, pass) in &passes {
        for member in &to.members {
            if ctx.is_stopped() {
                return Err(
                    "stopped by Terraform; the next apply continues the CA rotation".into(),
                );
            }
            let host = Host::connect(&member.ssh)
                .await
                .map_err(|e| format!("member {}: {e}", member.name))?;
            let reached = inspect::observe(&host, &to.settings)
                .await
                .map(|state| rotation_step(&state, new, &both));
            if reached.as_ref().is_ok_and(|reached| reached >= step) {
                host.close().await;
                continue;
            }
            let late = late_members(pass, &*pass.api(ctx.now()).await?).await;
            if !late.is_empty() {
                host.close().await;
                return Err(format!(
                    "CA rotation paused: every member must be healthy first: {}",
                    late.join("; ")
                ));
            }
            log::info!("CA rotation: member {} to {step:?}", member.name);
            let rewritten = rewrite_and_restart(ctx, pass, member, &host, binaries.as_ref()).await;
            host.close().await;
            fingerprints.insert(
                member.name.clone(),
                rewritten.map_err(|e| format!("member {}: {e}", member.name))?,
            );
            wait_until_healthy(ctx, pass, timeout).await?;
        }
    }
    Ok(())
}

/// Whether the running etcd started after its configuration file was last
/// written, i.e. runs with it (a member rewritten by an interrupted roll
/// but not restarted does not).
async fn started_after_config(host: &Host, spec: &ClusterSpec) -> bool {
    let config = crate::ssh::quote(&spec.settings.layout.config_file());
    let check = format!("pid=$(systemctl show -p MainPID --value etcd); [ \"$pid\" != 0 ] && [ /proc/$pid -nt {config} ] && echo fresh; true");
    host.run(&check)
        .await
        .map(|o| o.stdout.contains("fresh"))
        .unwrap_or(false)
}

/// Re-adds a member that was removed from the cluster out of band. Its old
/// data belongs to the removed member ID, so it is moved aside (kept).
async fn readd(
    ctx: &Context,
    spec: &ClusterSpec,
    api: &etcd::Cluster,
    member: &MemberSpec,
    host: &Host,
    binaries: Option<&LocalBinaries>,
) -> Result<Fingerprints, String> {
    let data = crate::ssh::quote(&spec.settings.layout.data_dir);
    let stamp = ctx.now().unix_timestamp();
    host.run_ok(&format!(
        "systemctl stop etcd 2>/dev/null || true; if [ -d {data}/member ]; then mv {data} {data}.removed-{stamp}; fi"
    ))
    .await
    .map_err(|e| e.to_string())?;
    let (_, live) = api.members().await?;
    let initial = joining_cluster(&live, member, &spec.settings);
    api.add_member(&member.peer_url(&spec.settings), false)
        .await?;
    install_and_start(
        spec,
        member,
        host,
        binaries,
        &initial,
        InitialState::Existing,
        ctx.now(),
    )
    .await
}

/// Removes live members the configuration does not list, one at a time,
/// only while every configured member is healthy (so quorum is never at risk).
async fn remove_unmanaged(
    ctx: &Context,
    spec: &ClusterSpec,
    api: &etcd::Cluster,
    timeout: Duration,
) -> Result<(), String> {
    let configured: Vec<String> = spec
        .members
        .iter()
        .map(|m| m.peer_url(&spec.settings))
        .collect();
    let (_, live) = api.members().await?;
    for extra in live
        .iter()
        .filter(|m| !m.peer_urls.iter().any(|u| configured.contains(u)))
    {
        let late = late_members(spec, api).await;
        if !late.is_empty() {
            return Err(format!(
                "refusing to remove unmanaged member {} while members are unhealthy: {}",
                etcd::format_id(extra.id),
                late.join("; ")
            ));
        }
        log::info!(
            "removing unmanaged member {} ({})",
            extra.name,
            etcd::format_id(extra.id)
        );
        api.remove_member(extra.id).await?;
        wait_until_healthy(ctx, spec, timeout).await?;
    }
    Ok(())
}

fn same_member(a: &MemberSpec, b: &MemberSpec) -> bool {
    a.name == b.name && a.host == b.host
}

/// Members only `to` has, and members only `from` has; a member that moves
/// to another host is in both (it is removed, then added).
pub fn membership_changes<'a>(
    from: &'a ClusterSpec,
    to: &'a ClusterSpec,
) -> (Vec<&'a MemberSpec>, Vec<&'a MemberSpec>) {
    let added = to
        .members
        .iter()
        .filter(|t| !from.members.iter().any(|f| same_member(f, t)))
        .collect();
    let removed = from
        .members
        .iter()
        .filter(|f| !to.members.iter().any(|t| same_member(f, t)))
        .collect();
    (added, removed)
}

/// Changes the membership from `from` to `to`, one member at a time and
/// only while every member that stays is healthy: removals first (moving
/// leadership away from a leader that goes), then additions (as a learner
/// that is promoted once it has caught up). After each step the cluster
/// must be healthy before the next.
pub async fn change_membership(
    ctx: &Context,
    from: &ClusterSpec,
    to: &ClusterSpec,
    fingerprints: &mut BTreeMap<String, Fingerprints>,
    timeout: Duration,
    purge_data: bool,
) -> Result<(), String> {
    let (added, removed) = membership_changes(from, to);
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let observed = observe(ctx, from, fingerprints).await;
    let unhealthy: Vec<String> = from
        .members
        .iter()
        .filter(|m| !removed.iter().any(|r| same_member(r, m)))
        .filter_map(|m| {
            observed
                .status
                .get(&m.name)
                .filter(|s| *s != HEALTHY)
                .map(|s| format!("{} ({s})", m.name))
        })
        .collect();
    if !unhealthy.is_empty() {
        return Err(format!(
            "the membership was not changed: every member that stays must be healthy first, and these are not: {}",
            unhealthy.join("; ")
        ));
    }
    let mut current = from.members.clone();
    for gone in removed {
        if ctx.is_stopped() {
            return Err("stopped by Terraform; the next apply continues the change".into());
        }
        let api = from.with_members(current.clone()).api(ctx.now()).await?;
        remove_member(&api, gone, &from.settings).await?;
        current.retain(|m| !same_member(m, gone));
        fingerprints.remove(&gone.name);
        uninstall_member(gone, &from.settings, purge_data).await?;
        wait_until_healthy(ctx, &from.with_members(current.clone()), timeout).await?;
    }
    let binaries = to.local_binaries()?;
    for new in added {
        if ctx.is_stopped() {
            return Err("stopped by Terraform; the next apply continues the change".into());
        }
        let api = to.with_members(current.clone()).api(ctx.now()).await?;
        let prints = add_member(ctx, to, &api, new, binaries.as_ref(), timeout).await?;
        fingerprints.insert(new.name.clone(), prints);
        current.push(new.clone());
        wait_until_healthy(ctx, &to.with_members(current.clone()), timeout).await?;
    }
    Ok(())
}

/// Removes `gone` from the cluster, handing leadership to another voting
/// member first if it leads. Nothing to do if it is not a member.
pub async fn remove_member(
    api: &etcd::Cluster,
    gone: &MemberSpec,
    settings: &ClusterSettings,
) -> Result<(), String> {
    let (_, live) = api.members().await?;
    let Some(leaving) = live
        .iter()
        .find(|m| m.peer_urls.contains(&gone.peer_url(settings)))
    else {
        return Ok(());
    };
    let successor = live
        .iter()
        .find(|m| m.id != leaving.id && !m.is_learner)
        .ok_or_else(|| format!("removing {} would leave no voting member", gone.name))?;
    api.move_leader_off(leaving.id, successor.id).await?;
    log::info!(
        "removing member {} ({})",
        gone.name,
        etcd::format_id(leaving.id)
    );
    match api.remove_member(leaving.id).await {
        Ok(()) => Ok(()),
        // Asked through its own endpoint, a removed member may stop before
        // it answers ("server stopped"): the member list tells.
        Err(e) => match api.members().await {
            Ok((_, live)) if !live.iter().any(|m| m.id == leaving.id) => Ok(()),
            _ => Err(e),
        },
    }
}

/// Stops a member that has left the cluster and removes its installation
/// (its data stays unless `purge_data`). A lost host is only a warning: the
/// member is out of the cluster and nothing runs there.
pub async fn uninstall_member(
    gone: &MemberSpec,
    settings: &ClusterSettings,
    purge_data: bool,
) -> Result<(), String> {
    match Host::connect(&gone.ssh).await {
        Ok(host) => {
            let result = install::uninstall(&host, settings, purge_data).await;
            host.close().await;
            result.map_err(|e| format!("member {} left the cluster, but: {e}", gone.name))
        }
        Err(e) => {
            log::warn!("member {} removed; its host is unreachable: {e}", gone.name);
            Ok(())
        }
    }
}

/// Adds `new` to the running cluster reached through `api`: member add (as
/// a learner where etcd has them), install and start it with
/// `initial-cluster-state=existing`, then promote it once it has caught
/// up. A member already added by an interrupted earlier run is finished,
/// not added twice; a data directory that is not its own is refused.
pub async fn add_member(
    ctx: &Context,
    to: &ClusterSpec,
    api: &etcd::Cluster,
    new: &MemberSpec,
    binaries: Option<&LocalBinaries>,
    timeout: Duration,
) -> Result<Fingerprints, String> {
    let host = Host::connect(&new.ssh)
        .await
        .map_err(|e| format!("member {}: {e}", new.name))?;
    let added = async {
        let (_, live) = api.members().await?;
        let earlier = live
            .iter()
            .find(|m| m.peer_urls.contains(&new.peer_url(&to.settings)));
        let data = crate::ssh::quote(&to.settings.layout.data_dir);
        let has_data = host
            .run(&format!("test -d {data}/member && echo yes; true"))
            .await
            .map_err(|e| e.to_string())?;
        if earlier.is_none() && has_data.stdout.contains("yes") {
            return Err(format!(
                "{} already holds etcd data (of an earlier member?); refusing to join with it. Move it away first.",
                to.settings.layout.data_dir
            ));
        }
        let initial = joining_cluster(&live, new, &to.settings);
        log::info!("adding member {} at {}", new.name, new.host);
        let (id, learner) = match earlier {
            Some(m) => (m.id, m.is_learner),
            None => (
                api.add_member(&new.peer_url(&to.settings), to.has_learners())
                    .await?,
                to.has_learners(),
            ),
        };
        let prints = install_and_start(
            to,
            new,
            &host,
            binaries,
            &initial,
            InitialState::Existing,
            ctx.now(),
        )
        .await?;
        if learner {
            api.promote_member(id, timeout).await?;
        }
        Ok(prints)
    }
    .await;
    host.close().await;
    added.map_err(|e| format!("member {}: {e}", new.name))
}

/// Stops and removes every member's installation. Data directories stay
/// unless `purge_data` is set.
pub async fn teardown(spec: &ClusterSpec, purge_data: bool) -> Result<(), String> {
    let hosts = connect_all(&spec.members).await;
    let removals = spec
        .members
        .iter()
        .zip(&hosts)
        .map(|(member, host)| async move {
            let host = host
                .as_ref()
                .map_err(|e| format!("member {}: {e}", member.name))?;
            install::uninstall(host, &spec.settings, purge_data)
                .await
                .map_err(|e| format!("member {}: {e}", member.name))
        });
    let results = futures::future::join_all(removals).await;
    close_all(hosts).await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{
        create_ca, issue, CaRequest, KeyAlgorithm, KeyedCertificate, LeafRequest, Usage,
    };

    fn ca() -> KeyedCertificate {
        let now = OffsetDateTime::now_utc();
        create_ca(&CaRequest {
            // Both CAs have the same name: only the signature tells them apart.
            common_name: "etcd-ca",
            organization: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: now,
            not_after: now + time::Duration::days(1),
        })
        .unwrap()
    }

    fn host_with(trusted: &str, issuer: &KeyedCertificate) -> inspect::HostState {
        let now = OffsetDateTime::now_utc();
        let server = issue(
            &issuer.cert_pem,
            &issuer.key_pem,
            &LeafRequest {
                common_name: "e1",
                usage: Usage::Server,
                names: &["10.0.0.11".to_string()],
                algorithm: KeyAlgorithm::EcdsaP256,
                not_before: now,
                not_after: now + time::Duration::hours(1),
            },
        )
        .unwrap();
        inspect::HostState {
            unit: "active".into(),
            files: [(
                "ca.crt".to_string(),
                install::sha256_hex(trusted.as_bytes()),
            )]
            .into(),
            server_cert_pem: server.cert_pem,
        }
    }

    #[test]
    fn rotation_steps_follow_the_trusted_file_and_the_certificate_issuer() {
        let (old, new) = (ca(), ca());
        let both = format!("{}\n{}\n", new.cert_pem.trim_end(), old.cert_pem.trim_end());
        let step = |trusted: &str, issuer: &KeyedCertificate| {
            rotation_step(&host_with(trusted, issuer), &new.cert_pem, &both)
        };
        assert_eq!(step(&old.cert_pem, &old), RotationStep::TrustsOld);
        assert_eq!(step(&both, &old), RotationStep::TrustsBoth);
        assert_eq!(step(&both, &new), RotationStep::NewCertificates);
        assert_eq!(step(&new.cert_pem, &new), RotationStep::TrustsNew);
        assert!(crate::pki::issued_by(
            &host_with(&both, &old).server_cert_pem,
            &old.cert_pem
        ));
        assert!(!crate::pki::issued_by("not a certificate", &old.cert_pem));
    }
}
