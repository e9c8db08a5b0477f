//! The catalog: every report definition in the reports folder, checked at start-up, looked up
//! by id, and one definition read afresh when a job is about to run.
//!
//! Owns listing the folder and collecting every file's error. Parsing one file is
//! `definition`'s job; must not depend on `source`, `render`, `web` or `jobs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Definition;
use super::definition::{self, DefinitionError, ParseContext, Problem};

/// All definitions of a reports folder, by id.
#[derive(Clone, Debug)]
pub struct Catalog {
    dir: PathBuf,
    reports: BTreeMap<String, Arc<Definition>>,
}

impl Catalog {
    /// Reads every `*.toml` file in `dir` (other files are ignored; an empty folder gives an
    /// empty catalog).
    ///
    /// # Errors
    ///
    /// Every file's [`DefinitionError`], in file-name order, or one error when `dir` cannot
    /// be listed.
    pub fn load(dir: &Path, ctx: &ParseContext) -> Result<Catalog, Vec<DefinitionError>> {
        let unreadable = |e: std::io::Error| {
            vec![DefinitionError::whole_file(
                dir,
                Problem::Unreadable(e.to_string()),
            )]
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut reports = BTreeMap::new();
        let mut errors = Vec::new();
        for path in files {
            match definition::load(&path, ctx) {
                Ok(def) => {
                    reports.insert(def.id.clone(), Arc::new(def));
                }
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(Catalog {
                dir: dir.to_owned(),
                reports,
            })
        } else {
            Err(errors)
        }
    }

    /// The definition with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Definition>> {
        self.reports.get(id)
    }

    /// All definitions, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Definition>> {
        self.reports.values()
    }

    /// How many definitions there are.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// Whether the folder had no definitions.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// The reports folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `<dir>/<id>.toml` afresh: `None` when it is gone, so the runner can tell a
    /// definition that changed (compare [`Definition::hash`]) or vanished before a job ran.
    ///
    /// # Errors
    ///
    /// A [`DefinitionError`] when `id` is not a valid id or the file no longer passes.
    pub fn reload_one(
        &self,
        id: &str,
        ctx: &ParseContext,
    ) -> Result<Option<Definition>, DefinitionError> {
        let path = self.dir.join(format!("{id}.toml"));
        if !definition::is_valid_id(id) {
            let stem = id.to_owned();
            return Err(DefinitionError::whole_file(&path, Problem::BadId { stem }));
        }
        if !path.exists() {
            return Ok(None);
        }
        definition::load(&path, ctx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "title = \"T\"\n[source]\nkind = \"sqlite\"\ndatabase = \"x.db\"\nquery = \"select 1\"\n[[column]]\nfield = \"a\"\n";

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("pdfworker-catalog-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, file: &str, text: &str) {
            std::fs::write(self.0.join(file), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn loads_every_toml_sorted_by_id_and_ignores_other_files() {
        let dir = TempDir::new("sorted");
        dir.write("zeta.toml", VALID);
        dir.write("alpha-1.toml", VALID);
        dir.write("notes.txt", "not toml");
        let catalog = Catalog::load(&dir.0, &ParseContext::default()).unwrap();
        let ids: Vec<&str> = catalog.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["alpha-1", "zeta"]);
        assert_eq!(catalog.get("zeta").map(|d| d.title.as_str()), Some("T"));
        assert!(catalog.get("notes").is_none());
        assert_eq!(catalog.dir(), dir.0.as_path());
        assert_eq!(catalog.len(), 2);
    }

    #[test]
    fn collects_all_errors_not_just_the_first() {
        let dir = TempDir::new("errors");
        dir.write("good.toml", VALID);
        dir.write("bad-one.toml", "title = 3");
        dir.write("Bad_Two.toml", VALID);
        let errors = Catalog::load(&dir.0, &ParseContext::default()).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            matches!(*errors[0].problem, Problem::BadId { .. }),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].to_string().contains("bad-one.toml:1:9"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn an_empty_folder_is_an_empty_catalog_and_a_missing_one_an_error() {
        let dir = TempDir::new("empty");
        let catalog = Catalog::load(&dir.0, &ParseContext::default()).unwrap();
        assert!(catalog.is_empty());
        let missing = dir.0.join("nope");
        let errors = Catalog::load(&missing, &ParseContext::default()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(matches!(*errors[0].problem, Problem::Unreadable(_)));
    }

    #[test]
    fn reload_one_sees_changes_and_removals() {
        let dir = TempDir::new("reload");
        dir.write("r.toml", VALID);
        let ctx = ParseContext::default();
        let catalog = Catalog::load(&dir.0, &ctx).unwrap();
        let before = catalog.get("r").unwrap().hash.clone();
        dir.write("r.toml", &VALID.replace("\"T\"", "\"U\""));
        let changed = catalog.reload_one("r", &ctx).unwrap().unwrap();
        assert_ne!(changed.hash, before);
        assert_eq!(changed.title, "U");
        std::fs::remove_file(dir.0.join("r.toml")).unwrap();
        assert!(catalog.reload_one("r", &ctx).unwrap().is_none());
        assert!(catalog.reload_one("../r", &ctx).is_err());
    }
}
