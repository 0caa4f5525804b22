//! Every test's lab in one table. A lab is a bridge and a /24 of its own
//! (`testhosts`), so tests that run at the same time must use different
//! labs; the compiler refuses two labs with one number.

/// A lab and its number (`TESTHOSTS_LAB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LabId {
    TesthostsSmoke = 1,
    Bootstrap3 = 3,
    Download5 = 4,
    HostKilledDuringBootstrap = 5,
    SingleMember = 6,
    // 7, 8 and 10: benches/snapshot-memory, benches/cluster-apply and
    // benches/day2-changes.
    /// `acceptance-tests/demo` (a script: it sets `TESTHOSTS_LAB=9` itself).
    Demo = 9,
    InterruptedBootstrap = 11,
    Import = 12,
    Tunnels = 13,
    OsPackages = 14,
    Scaling = 15,
    Rolling = 16,
    CertRenewal = 17,
    InterruptedRoll = 18,
    CaRotation = 19,
    Member = 20,
    Snapshot = 21,
    MoveAll = 22,
    MemberPair = 23,
    Sudo = 24,
    HangingCommand = 25,
    Backups = 26,
    Recovery = 27,
    ConcurrentApplies = 28,
    DnsNames = 29,
    ClientCertificates = 30,
    KubernetesExample = 31,
    ConsumerThroughRotation = 32,
    Patroni = 33,
    SharedCluster = 34,
    AuthThroughChanges = 35,
    CaKeyOutsideState = 36,
    VipManager = 37,
    SpaceAlarm = 38,
    Etcd35 = 39,
    Etcd36 = 40,
    Etcd37 = 41,
    Upgrades = 42,
    ClientPortOutOfReach = 43,
    HandAddedVoter = 44,
    OpenTofu = 45,
    PeerNameMigration = 46,
    ObjectStorage = 47,
}

impl LabId {
    pub fn number(self) -> u32 {
        self as u32
    }
}
