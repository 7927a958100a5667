//! [`Namespace`]: where a Windows mutex lives, and [`mutex_object_name`].

/// The Windows kernel object namespace of the mutex: which processes share
/// it. Chosen with [`Spec::with_namespace`](crate::Spec::with_namespace);
/// ignored on Unix, where the lock file already serves the whole machine
/// (every process that sees the same temp directory).
///
/// # Windows
/// Named kernel objects live in per-session namespaces: each interactive or
/// remote-desktop logon is a session, and services run in session 0. A
/// name without a prefix is looked up in the caller's session; the
/// `Global\` prefix names the one namespace shared by all sessions.
///
/// | Namespace | Object name | Excludes | Does not exclude |
/// |---|---|---|---|
/// | [`Session`](Self::Session) (default) | `juju-mutex-NAME` | processes of the same session, Go's juju/mutex among them | processes of other sessions: services, other logged-on users, remote desktops |
/// | [`Global`](Self::Global) | `Global\juju-mutex-NAME` | processes of every session (services and users) that use `Global` | Go's juju/mutex, and this crate with `Session`, both of which use the session's name |
///
/// In session 0 (services) the session namespace *is* the global one, so
/// there the two choices name the same object.
///
/// In both namespaces the mutex is created with a security descriptor that
/// lets every user wait for and release it (SDDL
/// `D:(A;;0x100001;;;WD)(A;;0x1f0001;;;OW)`: `SYNCHRONIZE |
/// MUTEX_MODIFY_STATE` for Everyone, and all access for its owner only), so
/// a service and a user process (`Global`), or an elevated and a normal
/// process (`Session`), can take turns whichever of them creates it first.
/// The owner's full access lets Go's juju/mutex of the same user open it:
/// Go asks for all access when the mutex exists.
///
/// In both, any process allowed to open the object can hold it forever,
/// and a process that creates the name first with a stricter security
/// descriptor (or as another kind of object) makes acquisition fail with
/// an [`Error::Io`](crate::Error::Io) carrying the OS error (5, access
/// denied, or 6, invalid handle) rather than waiting: the same exposure as
/// a lock file in a shared temp directory on Unix. Processes in an
/// AppContainer see their own session namespace and may be refused
/// `Global\`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// The caller's session: `juju-mutex-NAME`, the Go package's name.
    #[default]
    Session,
    /// All sessions of the machine: `Global\juju-mutex-NAME`.
    Global,
}

/// The name of the Windows kernel mutex of `name` in `namespace`:
/// `juju-mutex-NAME` (the Go package's `"juju-mutex-" + spec.Name`) or
/// `Global\juju-mutex-NAME`. It does not check the name. Only Windows
/// creates the object; the function exists on every platform.
///
/// ```
/// use machine_mutex::{mutex_object_name, Namespace};
/// assert_eq!(mutex_object_name("deploy", Namespace::Session), "juju-mutex-deploy");
/// assert_eq!(mutex_object_name("deploy", Namespace::Global), r"Global\juju-mutex-deploy");
/// ```
pub fn mutex_object_name(name: &str, namespace: Namespace) -> String {
    let prefix = match namespace {
        Namespace::Session => "",
        Namespace::Global => "Global\\",
    };
    format!("{prefix}juju-mutex-{name}")
}
