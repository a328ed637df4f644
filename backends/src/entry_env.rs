//! Per-entry credentials and resource limits, resolved for a spawn (the
//! cltab's `user=`, `group=` and `limit.*=` options; see
//! `clinit_engine::options`). Resolution happens before the fork, since
//! the user database (`getpwnam`, `getgrouplist`) must not be read in the
//! forked child.

use crate::process::Credentials;
use clinit_engine::options::{EntryOptions, Resource};
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;
use std::io;

/// `(credentials, HOME, user name)` for an entry with `user=` (or only
/// `group=`: the daemon's uid with that gid); `None` when it has neither.
/// A name or number that does not resolve is a `NotFound` error.
pub fn credentials(o: &EntryOptions) -> io::Result<Option<(Credentials, String, String)>> {
    if o.user.is_none() && o.group.is_none() {
        return Ok(None);
    }
    let not_found = |what: &str, name: &str| {
        io::Error::new(io::ErrorKind::NotFound, format!("no such {what}: {name}"))
    };
    let user = match &o.user {
        Some(name) => {
            let found = match name.parse::<u32>() {
                Ok(uid) => User::from_uid(Uid::from_raw(uid)),
                Err(_) => User::from_name(name),
            };
            Some(found.map_err(io::Error::from)?.ok_or_else(|| not_found("user", name))?)
        }
        None => None,
    };
    let gid = match &o.group {
        Some(name) => match name.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(name)
                .map_err(io::Error::from)?
                .ok_or_else(|| not_found("group", name))?
                .gid
                .as_raw(),
        },
        None => user.as_ref().map_or_else(|| Gid::current().as_raw(), |u| u.gid.as_raw()),
    };
    let Some(user) = user else {
        let uid = Uid::current().as_raw();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
        let name =
            User::from_uid(Uid::current()).ok().flatten().map(|u| u.name).unwrap_or_default();
        let groups = nix::unistd::getgroups().map_err(io::Error::from)?;
        let groups = groups.into_iter().map(Gid::as_raw).collect();
        return Ok(Some((Credentials { uid, gid, groups }, home, name)));
    };
    let cname = CString::new(user.name.clone())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut groups: Vec<u32> = nix::unistd::getgrouplist(&cname, Gid::from_raw(gid))
        .map_err(io::Error::from)?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    if !groups.contains(&gid) {
        groups.push(gid);
    }
    let creds = Credentials { uid: user.uid.as_raw(), gid, groups };
    Ok(Some((creds, user.dir.display().to_string(), user.name)))
}

/// `(resource, soft, hard)` for `setrlimit`, infinity as `u64::MAX`.
pub fn rlimits(o: &EntryOptions) -> Vec<(i32, u64, u64)> {
    o.limits
        .iter()
        .map(|l| {
            let r = match l.resource {
                Resource::Nofile => libc::RLIMIT_NOFILE,
                Resource::Nproc => libc::RLIMIT_NPROC,
                Resource::Core => libc::RLIMIT_CORE,
                Resource::As => libc::RLIMIT_AS,
                Resource::Fsize => libc::RLIMIT_FSIZE,
                Resource::Cpu => libc::RLIMIT_CPU,
                Resource::Stack => libc::RLIMIT_STACK,
                Resource::Data => libc::RLIMIT_DATA,
                Resource::Memlock => libc::RLIMIT_MEMLOCK,
            };
            (r as i32, l.soft.unwrap_or(u64::MAX), l.hard.unwrap_or(u64::MAX))
        })
        .collect()
}

/// What keeps an entry's options from running **on this host**, found
/// without starting anything (`clinit check`): a `user=` or `group=` that
/// does not resolve, a `cwd=` that is not an existing directory. Each item
/// is `(line, reason)`, `line` being the entry's line in the cltab. These
/// are facts of the host, not of the file, so the parser (which is pure)
/// cannot see them; the daemon finds the same at spawn time, too late.
pub fn host_problems(
    entries: &[std::sync::Arc<clinit_engine::cltab::Entry>],
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for e in entries {
        let name = format!("{}:{}", e.group, e.tag);
        if let Err(err) = credentials(&e.options) {
            out.push((e.line, format!("entry {name}: {err}")));
        }
        if let Some(dir) = &e.options.cwd {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => out.push((e.line, format!("entry {name}: cwd={dir} is not a directory"))),
                Err(err) => out.push((e.line, format!("entry {name}: cwd={dir}: {err}"))),
            }
        }
    }
    out
}
