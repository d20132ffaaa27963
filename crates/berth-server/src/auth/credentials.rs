//! The access keys berth accepts, and the file that holds them.
//!
//! The file is `<data_dir>/credentials`, written in the AWS shared-credentials style so
//! that users can point their tools at it (`AWS_SHARED_CREDENTIALS_FILE`). Every
//! profile's key is accepted; other settings in a profile are ignored.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use rand::Rng;

/// The longest access key id or secret berth accepts. AWS's are 20 and 40 characters.
const MAX_KEY_LEN: usize = 128;

/// Problems with access keys and the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write credentials file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: profile [{profile}]: {reason}", path.display())]
    Profile {
        path: PathBuf,
        profile: String,
        reason: String,
    },
    #[error(
        "{} holds no access keys: add a profile with aws_access_key_id and \
         aws_secret_access_key, or remove the file to have berth generate a key",
        path.display()
    )]
    NoKeys { path: PathBuf },
    /// A key that cannot be used: bad characters, empty, or an id given twice with
    /// two secrets. Never echoes the secret.
    #[error("invalid access key: {0}")]
    InvalidKey(String),
}

/// One access key: its id and secret. `Debug` does not show the secret.
///
/// Parses from `ID:SECRET` (the form of `--access-key`); the secret may itself hold
/// colons, the id may not.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl AccessKey {
    /// A new random key in AWS's shape: "AKIA" and 16 uppercase alphanumerics, and a
    /// 40-character base64 secret (30 random bytes).
    pub fn generate() -> Self {
        const ID_CHARS: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::rng();
        let mut id = String::with_capacity(20);
        id.push_str("AKIA");
        for _ in 0..16 {
            id.push(char::from(ID_CHARS[rng.random_range(0..ID_CHARS.len())]));
        }
        let mut secret_bytes = [0u8; 30];
        rng.fill(&mut secret_bytes);
        let secret = base64::engine::general_purpose::STANDARD.encode(secret_bytes);
        Self { id, secret }
    }

    fn validate(&self) -> Result<(), CredentialsError> {
        validate_id(&self.id)?;
        validate_secret(&self.secret)
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for AccessKey {
    type Err = CredentialsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((id, secret)) = s.split_once(':') else {
            return Err(CredentialsError::InvalidKey(
                "expected ACCESS_KEY_ID:SECRET_ACCESS_KEY (no ':' found)".into(),
            ));
        };
        let key = AccessKey {
            id: id.trim().to_owned(),
            secret: secret.trim().to_owned(),
        };
        key.validate()?;
        Ok(key)
    }
}

/// Access key ids are restricted to characters that cannot break the `Authorization`
/// header's syntax (`/`, `,`, `=`, spaces) or the `ID:SECRET` form.
fn validate_id(id: &str) -> Result<(), CredentialsError> {
    if id.is_empty() {
        return Err(CredentialsError::InvalidKey(
            "the access key id is empty".into(),
        ));
    }
    if id.len() > MAX_KEY_LEN {
        return Err(CredentialsError::InvalidKey(format!(
            "the access key id is longer than {MAX_KEY_LEN} characters"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(CredentialsError::InvalidKey(format!(
            "access key id {id:?} contains {c:?}; use letters, digits, '_', '-' and '.'"
        )));
    }
    Ok(())
}

fn validate_secret(secret: &str) -> Result<(), CredentialsError> {
    if secret.is_empty() {
        return Err(CredentialsError::InvalidKey(
            "the secret access key is empty".into(),
        ));
    }
    if secret.len() > MAX_KEY_LEN {
        return Err(CredentialsError::InvalidKey(format!(
            "the secret access key is longer than {MAX_KEY_LEN} characters"
        )));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialsError::InvalidKey(
            "the secret access key must be printable ASCII without spaces".into(),
        ));
    }
    Ok(())
}

/// The set of access keys berth accepts: access key id -> secret.
/// `Debug` lists the ids only.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

impl Credentials {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key. Adding the same id twice is fine if the secret is the same.
    pub fn add(
        &mut self,
        id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<(), CredentialsError> {
        self.insert(AccessKey {
            id: id.into(),
            secret: secret.into(),
        })
    }

    /// Adds a key; see [`Credentials::add`].
    pub fn insert(&mut self, key: AccessKey) -> Result<(), CredentialsError> {
        key.validate()?;
        match self.keys.get(&key.id) {
            Some(existing) if *existing == key.secret => Ok(()),
            Some(_) => Err(CredentialsError::InvalidKey(format!(
                "access key id {} is given twice with different secrets",
                key.id
            ))),
            None => {
                self.keys.insert(key.id, key.secret);
                Ok(())
            }
        }
    }

    /// The secret of an access key id, if berth knows it.
    pub fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.keys.get(access_key_id).map(String::as_str)
    }

    pub fn contains(&self, access_key_id: &str) -> bool {
        self.keys.contains_key(access_key_id)
    }

    /// The access key ids, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_ids", &self.ids())
            .finish()
    }
}

/// The key [`CredentialsFile::load_or_create`] generated because the file was missing.
/// The caller tells the user about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    pub access_key_id: String,
    pub path: PathBuf,
}

/// The credentials file in a data directory.
#[derive(Debug, Clone, Copy)]
pub struct CredentialsFile;

impl CredentialsFile {
    pub const FILE_NAME: &'static str = "credentials";

    /// Where the credentials file of a data directory is.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE_NAME)
    }

    /// Loads `<data_dir>/credentials`; if there is none, generates a key and writes the
    /// file (mode 0600, atomically), and returns the new key's id with it.
    pub fn load_or_create(
        data_dir: &Path,
    ) -> Result<(Credentials, Option<CreatedKey>), CredentialsError> {
        let path = Self::path(data_dir);
        match fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                Ok((Self::parse(&text, &path)?, None))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(data_dir, &path),
            Err(source) => Err(CredentialsError::Read { path, source }),
        }
    }

    /// Loads a credentials file; it must hold at least one key.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        warn_if_readable_by_others(path);
        Self::parse(&text, path)
    }

    /// Parses the text of a credentials file; `path` only names it in errors.
    ///
    /// The syntax is that of AWS's shared credentials file: `[profile]` sections of
    /// `name = value` lines, comments starting with `#` or `;`. A profile with
    /// `aws_access_key_id` must have `aws_secret_access_key` and the other way round;
    /// profiles with neither are skipped.
    pub fn parse(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        #[derive(Default)]
        struct Profile<'a> {
            name: &'a str,
            line: usize,
            id: Option<&'a str>,
            secret: Option<&'a str>,
        }

        let syntax = |line: usize, reason: String| CredentialsError::Syntax {
            path: path.to_owned(),
            line,
            reason,
        };
        let mut credentials = Credentials::new();
        let mut finish = |profile: &Profile<'_>| -> Result<(), CredentialsError> {
            let problem = |reason: String| CredentialsError::Profile {
                path: path.to_owned(),
                profile: profile.name.to_owned(),
                reason,
            };
            match (profile.id, profile.secret) {
                (None, None) => Ok(()),
                (Some(_), None) => Err(problem(
                    "has aws_access_key_id but no aws_secret_access_key".into(),
                )),
                (None, Some(_)) => Err(problem(
                    "has aws_secret_access_key but no aws_access_key_id".into(),
                )),
                (Some(id), Some(secret)) => credentials.add(id, secret).map_err(|e| match e {
                    CredentialsError::InvalidKey(reason) => problem(reason),
                    other => other,
                }),
            }
        };

        let mut current: Option<Profile<'_>> = None;
        let mut seen = std::collections::HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let Some(name) = header.strip_suffix(']') else {
                    return Err(syntax(line_no, "a section header must end with ']'".into()));
                };
                let name = name.trim();
                // The AWS config file spells sections "[profile name]"; accept that too.
                let name = name.strip_prefix("profile ").map_or(name, str::trim);
                if name.is_empty() {
                    return Err(syntax(line_no, "empty profile name".into()));
                }
                if !seen.insert(name) {
                    return Err(syntax(line_no, format!("profile [{name}] appears twice")));
                }
                if let Some(done) = current.take() {
                    finish(&done)?;
                }
                current = Some(Profile {
                    name,
                    line: line_no,
                    ..Profile::default()
                });
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(syntax(
                    line_no,
                    "expected 'name = value' or '[profile]'".into(),
                ));
            };
            let Some(profile) = current.as_mut() else {
                return Err(syntax(
                    line_no,
                    "a setting before any [profile] section".into(),
                ));
            };
            let key = key.trim();
            let value = value.trim();
            let slot = if key.eq_ignore_ascii_case("aws_access_key_id") {
                &mut profile.id
            } else if key.eq_ignore_ascii_case("aws_secret_access_key") {
                &mut profile.secret
            } else {
                continue;
            };
            if slot.is_some() {
                return Err(syntax(
                    line_no,
                    format!(
                        "{key} is set twice in profile [{}] (line {})",
                        profile.name, profile.line
                    ),
                ));
            }
            *slot = Some(value);
        }
        if let Some(done) = current.take() {
            finish(&done)?;
        }
        if credentials.is_empty() {
            return Err(CredentialsError::NoKeys {
                path: path.to_owned(),
            });
        }
        Ok(credentials)
    }

    /// The text of a credentials file holding one key as its `[default]` profile.
    pub fn render(key: &AccessKey) -> String {
        format!(
            "# berth API credentials. AWS tools read this file with\n\
             #   AWS_SHARED_CREDENTIALS_FILE=<this file>\n\
             # Every profile's key is accepted; add profiles to add keys.\n\
             [default]\n\
             aws_access_key_id = {}\n\
             aws_secret_access_key = {}\n",
            key.id, key.secret
        )
    }

    fn create(
        data_dir: &Path,
        path: &Path,
    ) -> Result<(Credentials, Option<CreatedKey>), CredentialsError> {
        let write_err = |source| CredentialsError::Write {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(data_dir).map_err(write_err)?;

        let key = AccessKey::generate();
        let tmp = data_dir.join(format!(
            ".{}.{}.{:08x}.tmp",
            Self::FILE_NAME,
            std::process::id(),
            rand::rng().random::<u32>()
        ));
        let written =
            write_private(&tmp, Self::render(&key).as_bytes()).and_then(|()| publish(&tmp, path));
        // The temporary name is gone after a successful rename; after a link or a
        // failure it is still there.
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(true) => {}
            // Someone else (another berth starting at the same time) created the file
            // first: theirs wins, so that both processes accept the same keys.
            Ok(false) => return Ok((Self::load(path)?, None)),
            Err(source) => return Err(write_err(source)),
        }
        sync_dir(data_dir);

        let mut credentials = Credentials::new();
        let created = CreatedKey {
            access_key_id: key.id.clone(),
            path: path.to_owned(),
        };
        credentials.insert(key)?;
        Ok((credentials, Some(created)))
    }
}

/// Writes a new file readable by its owner only, and flushes it to disk.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Moves the finished temporary file to its final name without replacing a file that
/// appeared meanwhile: a hard link fails if the target exists. Where hard links are not
/// supported, falls back to a rename. Returns false if the target already existed.
fn publish(tmp: &Path, path: &Path) -> io::Result<bool> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => fs::rename(tmp, path).map(|()| true),
    }
}

/// Makes the new directory entry durable. Best effort: some filesystems refuse to sync
/// directories, and the file itself is already on disk.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot sync directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "the credentials file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn p() -> &'static Path {
        Path::new("credentials")
    }

    #[test]
    fn parses_several_profiles() -> TestResult {
        let text = "\
# a comment
; another
[default]
aws_access_key_id = AKIAAAAAAAAAAAAAAAAA
aws_secret_access_key=secret/with+chars==

[profile ci]
region = us-east-1
AWS_ACCESS_KEY_ID   =   CIKEY
aws_secret_access_key = ci-secret
aws_session_token = ignored

[settings-only]
region = eu-west-1
";
        let creds = CredentialsFile::parse(text, p())?;
        assert_eq!(creds.len(), 2);
        assert_eq!(
            creds.secret("AKIAAAAAAAAAAAAAAAAA"),
            Some("secret/with+chars==")
        );
        assert_eq!(creds.secret("CIKEY"), Some("ci-secret"));
        assert_eq!(creds.secret("nope"), None);
        assert_eq!(creds.ids(), vec!["AKIAAAAAAAAAAAAAAAAA", "CIKEY"]);
        // Debug never shows secrets.
        assert!(!format!("{creds:?}").contains("ci-secret"));
        Ok(())
    }

    #[test]
    fn rejects_bad_files() {
        let cases: &[(&str, &str)] = &[
            ("aws_access_key_id = A\n", "before any [profile]"),
            ("[default\naws_access_key_id = A\n", "must end with ']'"),
            ("[default]\njunk\n", "expected 'name = value'"),
            (
                "[default]\naws_access_key_id = A\n",
                "no aws_secret_access_key",
            ),
            (
                "[default]\naws_secret_access_key = S\n",
                "no aws_access_key_id",
            ),
            (
                "[a]\naws_access_key_id = A\naws_access_key_id = B\n",
                "set twice",
            ),
            ("[a]\n[a]\n", "appears twice"),
            (
                "[a]\naws_access_key_id = A/B\naws_secret_access_key = S\n",
                "contains '/'",
            ),
            (
                "[a]\naws_access_key_id = K\naws_secret_access_key = S1\n\
                 [b]\naws_access_key_id = K\naws_secret_access_key = S2\n",
                "different secrets",
            ),
            ("# nothing\n[default]\nregion = x\n", "holds no access keys"),
            ("", "holds no access keys"),
        ];
        for (text, expected) in cases {
            match CredentialsFile::parse(text, p()) {
                Ok(_) => panic!("{text:?} parsed"),
                Err(e) => {
                    let message = e.to_string();
                    assert!(message.contains(expected), "{text:?}: {message}");
                    assert!(
                        !message.contains("S1") && !message.contains("S2"),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = CredentialsFile::parse("[default]\n\n# c\nbroken\n", p()).map(|_| ());
        assert!(
            matches!(err, Err(CredentialsError::Syntax { line: 4, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn parses_id_colon_secret() -> TestResult {
        let key: AccessKey = "MYKEY:sec:ret/+=".parse()?;
        assert_eq!(key.id, "MYKEY");
        assert_eq!(key.secret, "sec:ret/+=");
        assert!(!format!("{key:?}").contains("sec:ret"));

        for (bad, expected) in [
            ("no-colon", "no ':' found"),
            (":secret", "id is empty"),
            ("id:", "secret access key is empty"),
            ("id x:secret", "contains ' '"),
            ("id:sec ret", "without spaces"),
        ] {
            match bad.parse::<AccessKey>() {
                Ok(_) => panic!("{bad:?} parsed"),
                Err(e) => assert!(e.to_string().contains(expected), "{bad:?}: {e}"),
            }
        }
        Ok(())
    }

    #[test]
    fn add_is_idempotent_but_refuses_a_second_secret() -> TestResult {
        let mut creds = Credentials::new();
        creds.add("K", "S")?;
        creds.add("K", "S")?;
        assert_eq!(creds.len(), 1);
        assert!(creds.add("K", "T").is_err());
        assert!(creds.add("", "T").is_err());
        assert_eq!(creds.secret("K"), Some("S"));
        Ok(())
    }

    #[test]
    fn generated_keys_have_aws_shape() {
        let a = AccessKey::generate();
        let b = AccessKey::generate();
        assert_ne!(a, b);
        for key in [&a, &b] {
            assert_eq!(key.id.len(), 20);
            assert!(key.id.starts_with("AKIA"));
            assert!(
                key.id
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            );
            assert_eq!(key.secret.len(), 40);
            assert!(key.validate().is_ok());
        }
    }

    #[test]
    fn creates_the_file_once_with_private_permissions() -> TestResult {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");

        let (creds, created) = CredentialsFile::load_or_create(&data_dir)?;
        let Some(created) = created else {
            panic!("the file was not reported as created");
        };
        let path = data_dir.join("credentials");
        assert_eq!(created.path, path);
        assert_eq!(creds.ids(), vec![created.access_key_id.as_str()]);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&data_dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from("credentials")]);

        // What was written parses back to the same key.
        let reread = CredentialsFile::load(&path)?;
        let secret = reread.secret(&created.access_key_id);
        assert!(secret.is_some());
        assert_eq!(secret, creds.secret(&created.access_key_id));

        // The second start loads the file rather than replacing it.
        let (again, created_again) = CredentialsFile::load_or_create(&data_dir)?;
        assert!(created_again.is_none());
        assert_eq!(again.ids(), creds.ids());
        Ok(())
    }

    #[test]
    fn an_existing_file_is_never_replaced() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("credentials");
        fs::write(
            &path,
            "[default]\naws_access_key_id = MINE\naws_secret_access_key = s\n",
        )?;
        let (creds, created) = CredentialsFile::load_or_create(dir.path())?;
        assert!(created.is_none());
        assert_eq!(creds.ids(), vec!["MINE"]);

        fs::write(&path, "[default]\n")?;
        assert!(matches!(
            CredentialsFile::load_or_create(dir.path()),
            Err(CredentialsError::NoKeys { .. })
        ));
        assert_eq!(fs::read_to_string(&path)?, "[default]\n");
        Ok(())
    }
}
