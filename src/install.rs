//! `mysql-sts install DIR`: hands this binary to the other containers of the
//! pod. The agent image has no shell or `cp`, so the binary copies itself.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Copies the running executable to `dir/mysql-sts` atomically, mode 0755.
pub fn copy_self(dir: &Path) -> Result<PathBuf> {
    let exe = std::env::current_exe().io_context(|| "cannot find the running executable".into())?;
    std::fs::create_dir_all(dir).io_context(|| format!("cannot create {}", dir.display()))?;
    let to = dir.join("mysql-sts");
    let tmp = dir.join(".mysql-sts.tmp");
    std::fs::copy(&exe, &tmp)
        .io_context(|| format!("cannot copy {} to {}", exe.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .io_context(|| format!("cannot make {} executable", tmp.display()))?;
    std::fs::rename(&tmp, &to).io_context(|| format!("cannot write {}", to.display()))?;
    Ok(to)
}
