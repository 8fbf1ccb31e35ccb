//! The WASI filesystem calls the host replaces, on top of wasmtime-wasi's
//! own (which they call): in a plugin's `directories` grant,
//! `symlink-at` is refused (a link pointing out of the grant would
//! mislead other readers of that directory), and every call that adds
//! bytes or entries is charged to the plugin's disk budget first
//! ([`super::disk`]): file streams opened for writing are wrapped
//! ([`Budgeted`]), and `write`, `set-size`, `open-at` creating,
//! `create-directory-at` and `link-at` are checked before they run.
//!
//! A Python collector may not open, create, rename or link a module file
//! (`.py`, `.pyc`, `.zip`, … [`MODULE_SUFFIXES`]) in its grant: code it
//! runs comes only from its pinned script and the runtime, never from a
//! directory it can write (the runtime's import system reads no files
//! either; this holds whatever the script does to it).

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, FsError, OutputStream, Pollable, StreamError};

use super::disk::Budget;
use super::HostState;
use std::sync::Arc;

type Res<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// Names of the files Python imports code from.
pub const MODULE_SUFFIXES: &[&str] = &[
    ".py", ".pyc", ".pyo", ".pyw", ".pyd", ".so", ".pth", ".zip", ".egg", ".whl",
];

/// Whether `path` names a module file and the plugin is a Python
/// collector: then the call is refused, counted and logged.
fn python_module(state: &mut HostState, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if state.ctx.script.is_none() || !MODULE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    state.stats.denials += 1;
    if let Some(suppressed) = state.ctx.log_limit.admit(crate::logging::Kind::Denial) {
        let _g = state.ctx.span.enter();
        tracing::warn!(
            suppressed,
            "a Python collector may not open, create or rename a module file in its directories grant ({}): the code it runs comes only from its pinned script and the runtime",
            crate::logging::guest_text(path)
        );
    }
    true
}

fn not_permitted<T>() -> Res<T> {
    Ok((Err(ErrorCode::NotPermitted),))
}

/// The guest's error for a failed filesystem call (a trap if it is one).
fn code<T>(r: Result<T, FsError>) -> Res<T> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

fn no_space<T>() -> Res<T> {
    Ok((Err(ErrorCode::InsufficientSpace),))
}

/// A borrow of the same descriptor, for a second call on it.
fn again(fd: &Resource<Descriptor>) -> Resource<Descriptor> {
    Resource::new_borrow(fd.rep())
}

/// A file's output stream whose writes are charged to the plugin's disk
/// budget before they reach the file.
struct Budgeted {
    inner: DynOutputStream,
    budget: Arc<Budget>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Budgeted {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Budgeted {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        if self.budget.charge(bytes.len() as u64).is_err() {
            return Err(no_space_left());
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let n = self.inner.check_write()?;
        match self.budget.room() {
            // Never "0, wait": nothing will free room during the call.
            0 if n > 0 => {
                self.budget.exhausted();
                Err(no_space_left())
            }
            room => Ok(n.min(room)),
        }
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// The stream error the guest reads as `insufficient-space` (ENOSPC).
fn no_space_left() -> StreamError {
    StreamError::LastOperationFailed(std::io::Error::from_raw_os_error(libc::ENOSPC).into())
}

/// Wraps a new output stream in the budget, if the plugin has one.
fn budgeted(
    state: &mut HostState,
    r: Result<Resource<DynOutputStream>, FsError>,
) -> Res<Resource<DynOutputStream>> {
    let Some(budget) = state.disk.clone() else {
        return code(r);
    };
    let stream = match r {
        Ok(s) => s,
        Err(e) => return code(Err(e)),
    };
    let inner = state.table.delete(stream)?;
    let wrapped: DynOutputStream = Box::new(Budgeted { inner, budget });
    Ok((Ok(state.table.push(wrapped)?),))
}

/// Runs `op`, a call that creates one entry, with the entry charged to
/// the budget first (refused past it) and given back if the call fails.
async fn with_entry<T>(
    budget: Option<Arc<Budget>>,
    op: impl std::future::Future<Output = Result<T, FsError>>,
) -> Res<T> {
    if budget.as_ref().is_some_and(|b| b.charge_entry().is_err()) {
        return no_space();
    }
    let r = op.await;
    if let (Err(_), Some(b)) = (&r, budget) {
        b.refund_entry();
    }
    code(r)
}

/// Charges the bytes between a file's end and `offset` (where a write at
/// `offset` would begin, or the size it is set to): what was charged,
/// nothing when `offset` is within the file.
async fn charge_gap<T>(
    state: &mut HostState,
    budget: &Budget,
    fd: &Resource<Descriptor>,
    offset: u64,
) -> Result<u64, Res<T>> {
    if offset == 0 {
        return Ok(0);
    }
    let size = match state.filesystem().stat(again(fd)).await {
        Ok(st) => st.size,
        Err(e) => return Err(code(Err(e))),
    };
    let gap = offset.saturating_sub(size);
    if gap > 0 && budget.charge(gap).is_err() {
        return Err(no_space());
    }
    Ok(gap)
}

/// Replaces the WASI filesystem calls above (after WASI is linked).
pub(super) fn shadow(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance("wasi:filesystem/types@0.2.12")?;
    shadow_writes(&mut types)?;
    shadow_entries(&mut types)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What a filesystem instance of the linker is.
type Types<'a> = wasmtime::component::LinkerInstance<'a, HostState>;

/// Writes, appends and size changes: charged to the disk budget.
fn shadow_writes(types: &mut Types<'_>) -> wasmtime::Result<()> {
    types.func_wrap_async(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, HostState>, (fd, offset): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                // A stream that starts past the end grows the file (sparse,
                // but every reader sees its size): that growth is charged.
                if let Some(budget) = state.disk.clone() {
                    if let Err(r) = charge_gap(state, &budget, &fd, offset).await {
                        return r;
                    }
                }
                let r = HostDescriptor::write_via_stream(&mut state.filesystem(), fd, offset);
                budgeted(state, r)
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, HostState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let r = HostDescriptor::append_via_stream(&mut state.filesystem(), fd);
            budgeted(state, r)
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, mut buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let Some(budget) = state.disk.clone() else {
                    return code(state.filesystem().write(fd, buf, offset).await);
                };
                // Past the end, the gap grows the file too.
                if let Err(r) = charge_gap(state, &budget, &fd, offset).await {
                    return r;
                }
                // A short write past the budget's room, as POSIX allows.
                buf.truncate(budget.room().max(1));
                let charged = buf.len() as u64;
                if budget.charge(charged).is_err() {
                    return no_space();
                }
                let r = state.filesystem().write(fd, buf, offset).await;
                budget.refund(charged - r.as_ref().map_or(0, |n| (*n).min(charged)));
                code(r)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, HostState>, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let Some(budget) = state.disk.clone() else {
                    return code(state.filesystem().set_size(fd, size).await);
                };
                let growth = match charge_gap(state, &budget, &fd, size).await {
                    Ok(growth) => growth,
                    Err(r) => return r,
                };
                let r = state.filesystem().set_size(fd, size).await;
                if r.is_err() {
                    budget.refund(growth);
                }
                code(r)
            })
        },
    )?;
    Ok(())
}

/// New entries (files, directories, links) charged; a Python module's
/// name, and symlinks, refused.
fn shadow_entries(types: &mut Types<'_>) -> wasmtime::Result<()> {
    types.func_wrap(
        "[method]descriptor.symlink-at",
        |_, (_dir, _old, _new): (Resource<Descriptor>, String, String)| {
            Ok((Err::<(), _>(ErrorCode::NotPermitted),))
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, path_flags, path, oflags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if python_module(state, &path) {
                    return not_permitted();
                }
                let budget = state
                    .disk
                    .clone()
                    .filter(|_| oflags.contains(OpenFlags::CREATE));
                let Some(budget) = budget else {
                    return code(
                        state
                            .filesystem()
                            .open_at(fd, path_flags, path, oflags, flags)
                            .await,
                    );
                };
                // Only a file that is not there yet is a new entry.
                let exists = state
                    .filesystem()
                    .stat_at(again(&fd), path_flags, path.clone())
                    .await
                    .is_ok();
                if !exists && budget.charge_entry().is_err() {
                    return no_space();
                }
                let r = state
                    .filesystem()
                    .open_at(fd, path_flags, path, oflags, flags)
                    .await;
                if r.is_err() && !exists {
                    budget.refund_entry();
                }
                code(r)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, HostState>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let budget = state.disk.clone();
                let mut fs = state.filesystem();
                with_entry(budget, fs.create_directory_at(fd, path)).await
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, old_flags, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if python_module(state, &new_path) {
                    return not_permitted();
                }
                let budget = state.disk.clone();
                let mut fs = state.filesystem();
                with_entry(
                    budget,
                    fs.link_at(fd, old_flags, old_path, new_fd, new_path),
                )
                .await
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if python_module(state, &new_path) {
                    return not_permitted();
                }
                code(
                    state
                        .filesystem()
                        .rename_at(fd, old_path, new_fd, new_path)
                        .await,
                )
            })
        },
    )?;
    Ok(())
}
