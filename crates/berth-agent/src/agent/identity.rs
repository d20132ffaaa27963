//! The container instance this host is, kept in the agent's data directory so that a
//! restarted agent is the same instance (and re-adopts its containers), not a new one.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceIdentity {
    pub cluster_arn: String,
    pub container_instance_arn: String,
}

const FILE_NAME: &str = "instance.json";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The saved identity, if this host registered before.
pub fn load(data_dir: &Path) -> io::Result<Option<InstanceIdentity>> {
    match std::fs::read(path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Saves the identity durably (write, fsync, rename), so a crash never leaves half a file.
pub fn save(data_dir: &Path, identity: &InstanceIdentity) -> io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let bytes = serde_json::to_vec_pretty(identity).map_err(io::Error::other)?;
    let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path(data_dir))?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(load(dir.path())?, None);
        let identity = InstanceIdentity {
            cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/default".into(),
            container_instance_arn:
                "arn:aws:ecs:us-east-1:123456789012:container-instance/default/abc".into(),
        };
        save(dir.path(), &identity)?;
        assert_eq!(load(dir.path())?, Some(identity));
        Ok(())
    }
}
