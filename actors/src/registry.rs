//! The name registry: `register(name, addr)`, `whereis(name)`. A name is freed when its
//! process exits (before any monitor hears of the exit), so a restarted process can take it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use crate::process::{Addr, Phase, Pid};

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("name `{name}` is already registered to {holder}")]
    Taken { name: String, holder: Pid },
    #[error("process {0} is not alive")]
    NotAlive(Pid),
}

struct Entry {
    pid: Pid,
    /// An `Addr<M>` for the `M` it was registered with.
    addr: Box<dyn Any + Send + Sync>,
}

static NAMES: LazyLock<Mutex<HashMap<String, Entry>>> = LazyLock::new(Default::default);

fn names() -> MutexGuard<'static, HashMap<String, Entry>> {
    // Insert/remove only; a poisoned map is still a valid map.
    NAMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Register a live process under `name`. A second registration of a live name is an error;
/// a process may hold several names.
pub fn register<M: Send + 'static>(
    name: impl Into<String>,
    addr: &Addr<M>,
) -> Result<(), RegistryError> {
    let name = name.into();
    let pid = addr.pid();
    // Lock order: registry, then the process. A dying process marks itself dead under its
    // own lock and only then takes the registry lock to remove its names, so a registration
    // either sees it dead or is seen (and undone) by its exit.
    let mut names = names();
    if let Some(holder) = names.get(&name) {
        return Err(RegistryError::Taken {
            name,
            holder: holder.pid.clone(),
        });
    }
    {
        let mut st = pid.state();
        if matches!(st.phase, Phase::Dead(_)) {
            return Err(RegistryError::NotAlive(pid.clone()));
        }
        st.names.push(name.clone());
    }
    names.insert(
        name,
        Entry {
            pid: pid.clone(),
            addr: Box::new(addr.clone()),
        },
    );
    Ok(())
}

/// The address registered under `name`, if any and if it was registered as an `Addr<M>`.
pub fn whereis<M: Send + 'static>(name: &str) -> Option<Addr<M>> {
    names()
        .get(name)
        .and_then(|e| e.addr.downcast_ref::<Addr<M>>().cloned())
}

/// The process registered under `name`, whatever its message type.
pub fn whereis_pid(name: &str) -> Option<Pid> {
    names().get(name).map(|e| e.pid.clone())
}

/// Remove a name; returns whether it was registered.
pub fn unregister(name: &str) -> bool {
    let removed = names().remove(name);
    match removed {
        Some(entry) => {
            entry.pid.state().names.retain(|n| n != name);
            true
        }
        None => false,
    }
}

/// Every registered name with its process, sorted by name.
pub fn registered() -> Vec<(String, Pid)> {
    let mut all: Vec<_> = names()
        .iter()
        .map(|(n, e)| (n.clone(), e.pid.clone()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Called by a dying process with the names it held.
pub(crate) fn forget(pid: &Pid, held: &[String]) {
    if held.is_empty() {
        return;
    }
    let mut names = names();
    for name in held {
        if names.get(name).is_some_and(|e| &e.pid == pid) {
            names.remove(name);
        }
    }
}
