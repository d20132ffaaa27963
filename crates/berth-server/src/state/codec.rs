//! How records are stored as bytes.
//!
//! Every record is JSON. Most are stored as that JSON, exactly sized; task records,
//! which are a million at scale and which the store keeps in memory for its
//! snapshots, are stored compressed: a tag byte and a zstd frame made with a built-in
//! dictionary. A task record of ~1.35 KB becomes ~0.27 KB: its field names and
//! the usual values come from the dictionary, and its ARNs repeat the first one.
//!
//! Reading accepts every form whatever the record (`json` tells them apart by the
//! first byte: JSON starts with `{`), so records written before compression, or by
//! tests as plain JSON, read as they always did.
//!
//! A dictionary is part of the on-disk format: values written with it can only be
//! read with it, so it never changes. Records are written with [`TAG_V2`]'s, a
//! dictionary trained by `scripts/train-record-dictionary.py` on task records made from
//! the task-definition corpus (field names, common values, and the entropy tables of
//! the rest, which a frame then need not build: ~40% less time to compress a record
//! than with [`TAG_V1`]'s, and ~13% fewer bytes). Values written with [`TAG_V1`]'s
//! dictionary (raw text, the first format) are still read.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;

use serde::Serialize;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The first byte of a value compressed with [`DICTIONARY_V1`] (read, no longer written).
const TAG_V1: u8 = 0x01;
/// The first byte of a value compressed with [`DICTIONARY_V2`], as records are written.
const TAG_V2: u8 = 0x02;

/// zstd's level: the fastest positive one; level 3 saved ~4% more bytes for ~10%
/// more time when this was chosen.
const LEVEL: i32 = 1;

/// The most a compressed value may claim to expand to: far above any record (the
/// store caps request bodies at a few MiB), so a corrupt header cannot make a read
/// allocate without bound.
const MAX_DECODED: u64 = 64 << 20;

/// A raw-content dictionary: text that task records are made of, in the order their
/// serialisation writes it (zstd finds matches for any substring of it; those near
/// its end are the cheapest to refer to, so the commonest members come last).
const DICTIONARY_V1: &[u8] = br#""stoppedReason":"Essential container in task exited","stopCode":"EssentialContainerExited","stoppingAt":1795000000.0,"stoppedAt":1795000000.0,"executionStoppedAt":1795000000.0,"exitCode":0,"reason":"","lastStatus":"STOPPED","desiredStatus":"STOPPED","stopCode":"TaskFailedToStart","stopCode":"UserInitiated","healthStatus":"HEALTHY","healthStatus":"UNHEALTHY","lastStatus":"PENDING","lastStatus":"PROVISIONING","lastStatus":"ACTIVATING","lastStatus":"DEACTIVATING","lastStatus":"STOPPING","connectivity":"CONNECTED","connectivityAt":1795000000.0,"networkBindings":[{"bindIP":"0.0.0.0","containerPort":80,"hostPort":32768,"protocol":"tcp"}],"networkInterfaces":[{"attachmentId":"","privateIpv4Address":"10.0.0.1"}],"memoryReservation":"128","gpuIds":[],"imageDigest":"sha256:","managedAgents":[],"availabilityZone":"us-east-1a","capacityProviderName":"","platformVersion":"","platformFamily":"","ephemeralStorage":{"sizeInGiB":20},"inferenceAccelerators":[],"overrides":{"containerOverrides":[{"name":"","command":[],"environment":[{"name":"","value":""}]}],"cpu":"","memory":"","taskRoleArn":"","executionRoleArn":""},"startedBy":"ecs-svc/","group":"family:","tags":[{"key":"","value":""}],"attributes":[{"name":"ecs.cpu-architecture","value":"x86_64"}],"berthReserved":{"cpu":0,"memory":0,"tcpPorts":[80],"udpPorts":[53]},"berthReleased":true,"berthAccounted":true}{"attachments":[],"attributes":[],"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/","containerInstanceArn":"arn:aws:ecs:us-east-1:123456789012:container-instance/","containers":[{"containerArn":"arn:aws:ecs:us-east-1:123456789012:container/","taskArn":"arn:aws:ecs:us-east-1:123456789012:task/","name":"app","image":"","runtimeId":"","lastStatus":"RUNNING","networkBindings":[],"networkInterfaces":[],"healthStatus":"UNKNOWN","cpu":"0","memory":""}],"cpu":"256","createdAt":1795000000.0,"desiredStatus":"RUNNING","enableExecuteCommand":false,"group":"service:","healthStatus":"UNKNOWN","lastStatus":"RUNNING","launchType":"EC2","memory":"512","overrides":{"containerOverrides":[],"inferenceAcceleratorOverrides":[]},"pullStartedAt":1795000000.0,"pullStoppedAt":1795000000.0,"startedAt":1795000000.0,"startedBy":"","tags":[],"taskArn":"arn:aws:ecs:us-east-1:123456789012:task/","taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/","version":1,"berthReserved":{"cpu":0,"memory":0,"tcpPorts":[],"udpPorts":[]},"berthReleased":false,"berthAccounted":false}"#;

/// A trained zstd dictionary (magic, id `ber2`, entropy tables and content), made by
/// `scripts/train-record-dictionary.py`.
const DICTIONARY_V2: &[u8] = include_bytes!("task_records_v2.zdict");

static ENCODER: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY_V2, LEVEL));
static DECODER_V1: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY_V1));
static DECODER_V2: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY_V2));

/// Per-thread state kept between calls: zstd contexts cost more to make than to use,
/// and a scratch buffer that has grown to the size of a record is not grown again.
#[derive(Default)]
struct Workspace {
    compressor: Option<Compressor<'static>>,
    decompressor_v1: Option<Decompressor<'static>>,
    decompressor_v2: Option<Decompressor<'static>>,
    json: Vec<u8>,
    frame: Vec<u8>,
}

impl Workspace {
    /// `value` as JSON, in the scratch buffer.
    fn serialize<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<&[u8], CodecError> {
        self.json.clear();
        serde_json::to_writer(&mut self.json, value)?;
        Ok(&self.json)
    }
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("compression failed: {0}")]
    Compression(std::io::Error),
    #[error("a compressed value is corrupt: {0}")]
    Corrupt(String),
}

/// A record as plain JSON in an allocation of exactly its size (a store holds its
/// values for as long as they are current; a vector grown by doubling would hold up
/// to twice that).
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    with_workspace(|work| Ok(work.serialize(value)?.to_vec()))
}

/// A record compressed: [`TAG_V2`] and a zstd frame (with its content size, without
/// checksum: the store has its own integrity), exactly sized.
pub fn encode_compressed<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    with_workspace(|work| {
        work.serialize(value)?;
        let compressor = match &mut work.compressor {
            Some(compressor) => compressor,
            empty => empty.insert(new_compressor().map_err(CodecError::Compression)?),
        };
        work.frame.clear();
        work.frame
            .reserve(zstd::zstd_safe::compress_bound(work.json.len()));
        let written = compressor
            .compress_to_buffer(work.json.as_slice(), &mut work.frame)
            .map_err(CodecError::Compression)?;
        let mut out = Vec::with_capacity(written + 1);
        out.push(TAG_V2);
        out.extend_from_slice(&work.frame[..written]);
        Ok(out)
    })
}

/// The JSON of a stored value, whichever form it was stored in.
pub fn json(value: &[u8]) -> Result<Cow<'_, [u8]>, CodecError> {
    match value.split_first() {
        Some((&TAG_V2, frame)) => decompress(frame, Dictionary::V2).map(Cow::Owned),
        Some((&TAG_V1, frame)) => decompress(frame, Dictionary::V1).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(value)),
    }
}

/// Decodes a stored value, whichever form it was stored in.
pub fn decode<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, CodecError> {
    Ok(serde_json::from_slice(&json(value)?)?)
}

#[derive(Clone, Copy)]
enum Dictionary {
    V1,
    V2,
}

fn decompress(frame: &[u8], dictionary: Dictionary) -> Result<Vec<u8>, CodecError> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_DECODED => size as usize,
        Ok(Some(size)) => return Err(CodecError::Corrupt(format!("claims {size} bytes"))),
        Ok(None) => return Err(CodecError::Corrupt("no content size".into())),
        Err(_) => return Err(CodecError::Corrupt("not a zstd frame".into())),
    };
    with_workspace(|work| {
        let (slot, prepared) = match dictionary {
            Dictionary::V1 => (&mut work.decompressor_v1, &*DECODER_V1),
            Dictionary::V2 => (&mut work.decompressor_v2, &*DECODER_V2),
        };
        let decompressor = match slot {
            Some(decompressor) => decompressor,
            empty => empty.insert(
                Decompressor::with_prepared_dictionary(prepared)
                    .map_err(|err| CodecError::Corrupt(err.to_string()))?,
            ),
        };
        let mut out = Vec::with_capacity(size);
        let written = decompressor
            .decompress_to_buffer(frame, &mut out)
            .map_err(|err| CodecError::Corrupt(err.to_string()))?;
        if written != size {
            return Err(CodecError::Corrupt(format!(
                "{written} bytes where the header says {size}"
            )));
        }
        Ok(out)
    })
}

fn new_compressor() -> std::io::Result<Compressor<'static>> {
    let mut compressor = Compressor::with_prepared_dictionary(&ENCODER)?;
    compressor.include_checksum(false)?;
    compressor.include_contentsize(true)?;
    compressor.include_dictid(false)?;
    Ok(compressor)
}

fn with_workspace<R>(
    f: impl FnOnce(&mut Workspace) -> Result<R, CodecError>,
) -> Result<R, CodecError> {
    WORKSPACE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut work) => f(&mut work),
        // Only re-entered if serialising a value encoded a record itself; a fresh
        // workspace serves that call.
        Err(_) => f(&mut Workspace::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task_like(id: &str) -> serde_json::Value {
        let arn = format!("arn:aws:ecs:eu-west-3:000011112222:task/prod/{id}");
        json!({
            "attachments": [], "attributes": [],
            "clusterArn": "arn:aws:ecs:eu-west-3:000011112222:cluster/prod",
            "containers": [{"containerArn": format!("arn:aws:ecs:eu-west-3:000011112222:container/prod/{id}/c0ffee"),
                "taskArn": arn, "name": "web", "image": "nginx:1.27", "lastStatus": "RUNNING",
                "networkBindings": [{"bindIP": "0.0.0.0", "containerPort": 80, "hostPort": 32768, "protocol": "tcp"}]}],
            "lastStatus": "RUNNING", "desiredStatus": "RUNNING", "taskArn": arn, "version": 3,
            "berthReserved": {"cpu": 256, "memory": 512, "tcpPorts": [32768], "udpPorts": []},
        })
    }

    #[test]
    fn compressed_records_read_back_as_the_same_json() -> Result<(), CodecError> {
        let record = task_like("0123456789abcdef0123456789abcdef");
        let plain = encode_json(&record)?;
        let packed = encode_compressed(&record)?;
        assert_eq!(packed.first(), Some(&TAG_V2));
        assert!(
            packed.len() * 2 < plain.len(),
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        assert_eq!(json(&packed)?.as_ref(), plain.as_slice());
        assert_eq!(decode::<serde_json::Value>(&packed)?, record);
        // Values are sized exactly.
        assert_eq!(packed.capacity(), packed.len());
        assert_eq!(plain.capacity(), plain.len());
        Ok(())
    }

    /// A task record as the builds before the trained dictionary stored it (read
    /// from the store of a `berth-bench scale` run of 34ebb13): it still reads.
    const STORED_V1: &str = "ASi1L/1gOwTFCQBijSMYgKkgDwBqDOKXWwID80eZ7pIiadkYI2wEfxEUbMIgAWk4eMw6OnHimEkCmDOmP0A5DeHrIzJMvYlCl5rRjkJpF2v021xjSMvgZSJC7WOqmgYMhlFAMDjsl21GiibUeERLH48Koz9vsUBkbK/NkmJKaKm+LlVGCd66lclVw9/Qk5sT6S1B5pNSwSn0wdhDPCAgwowyQ+8IkAD4APbpatvYYi6A3CQEKAtwcgMaAnz1CAZk3lDb6sACJqELhBcNSgCEgHO+oGnEPh+A0ZACQEDWcwKCKoEyFUgTDGAjhy43QAAXAMQPAtkAs/FUHxIMit0iZLx4G/MIJwgsBxxuL+iN7qoJCH8eXpkLEAIhoMFs92SrV4TUEGxQQL0PIDn5MVoIIYYgNjFggEHRg1L8owPRDPzlGBA=";

    #[test]
    fn records_stored_with_the_first_dictionary_still_read() -> Result<(), CodecError> {
        use base64::Engine as _;
        let Ok(stored) = base64::engine::general_purpose::STANDARD.decode(STORED_V1) else {
            panic!("the fixture is base64");
        };
        assert_eq!(stored.first(), Some(&TAG_V1));
        let record: crate::state::records::TaskRecord = decode(&stored)?;
        assert_eq!(
            record.task.task_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:123456789012:task/scale/382cd72af2fe4e2f972076f6c283d311")
        );
        assert_eq!(record.task.version, Some(2));
        assert_eq!(record.task.last_status.as_deref(), Some("RUNNING"));
        // Written again, it takes the current form and reads back the same.
        let again = encode_compressed(&record)?;
        assert_eq!(again.first(), Some(&TAG_V2));
        assert!(
            again.len() < stored.len(),
            "{} vs {}",
            again.len(),
            stored.len()
        );
        assert_eq!(json(&again)?.as_ref(), json(&stored)?.as_ref());
        Ok(())
    }

    #[test]
    fn the_tag_names_the_dictionary() -> Result<(), CodecError> {
        let plain = encode_json(&task_like("abc"))?;
        let mut packed = encode_compressed(&task_like("abc"))?;
        assert_eq!(json(&packed)?.as_ref(), plain.as_slice());
        // Read with the other dictionary, the frame (which carries no dictionary id)
        // does not give the record back.
        packed[0] = TAG_V1;
        if let Ok(bytes) = json(&packed) {
            assert_ne!(bytes.as_ref(), plain.as_slice());
        }
        Ok(())
    }

    #[test]
    fn plain_json_reads_as_itself() -> Result<(), CodecError> {
        let record = task_like("feedface");
        let plain = serde_json::to_vec(&record)?;
        assert!(matches!(json(&plain)?, Cow::Borrowed(_)));
        assert_eq!(decode::<serde_json::Value>(&plain)?, record);
        Ok(())
    }

    #[test]
    fn corrupt_compressed_values_are_errors_not_panics() {
        for bad in [
            vec![TAG_V1],
            vec![TAG_V2],
            vec![TAG_V1, 0x28, 0xb5, 0x2f, 0xfd],
            vec![TAG_V2, 0x28, 0xb5, 0x2f, 0xfd],
            vec![TAG_V1, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            vec![TAG_V2, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        ] {
            assert!(json(&bad).is_err(), "{bad:?}");
        }
        // A frame cut short.
        let Ok(mut packed) = encode_compressed(&task_like("abc")) else {
            panic!("encodes");
        };
        packed.truncate(packed.len() / 2);
        assert!(json(&packed).is_err());
    }

    #[test]
    fn compression_is_deterministic() -> Result<(), CodecError> {
        // Writers compare a new encoding with the stored one to skip unchanged writes.
        let record = task_like("00ff");
        assert_eq!(encode_compressed(&record)?, encode_compressed(&record)?);
        Ok(())
    }
}
