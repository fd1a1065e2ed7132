//! Refusing an output that is one of the inputs: with `--force`, the rename at commit
//! would replace the input with the output, and the data would be gone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Whether `a` and `b` name the same existing file (same device and inode), so that hard
/// links, symlinks and `./x` against `x` all count. A path that cannot be read is not the
/// same as anything.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Refuses an `output` that is the same file as any of `inputs`, before any work is done.
/// An output that does not exist yet (or is `-`, standard output) cannot be an input.
///
/// # Errors
/// [`Error::OutputIsInput`] naming the output and the input.
pub fn check_not_input<'a>(
    output: &Path,
    inputs: impl IntoIterator<Item = &'a Path>,
) -> Result<()> {
    if output == Path::new("-") || std::fs::metadata(output).is_err() {
        return Ok(());
    }
    match inputs.into_iter().find(|i| same_file(output, i)) {
        Some(input) => Err(Error::OutputIsInput {
            output: output.to_path_buf(),
            input: input.to_path_buf(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_spellings_of_one_file_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.npy");
        std::fs::write(&a, b"x").unwrap();
        let hard = dir.path().join("hard.npy");
        std::fs::hard_link(&a, &hard).unwrap();
        let soft = dir.path().join("soft.npy");
        std::os::unix::fs::symlink(&a, &soft).unwrap();
        let dotted = dir.path().join(".").join("a.npy");
        let other = dir.path().join("b.npy");
        std::fs::write(&other, b"x").unwrap();
        for out in [&a, &hard, &soft, &dotted] {
            let e = check_not_input(out, [other.as_path(), a.as_path()]).unwrap_err();
            assert!(matches!(e, Error::OutputIsInput { .. }), "{e:?}");
            assert!(e.to_string().contains("--out is the input file"), "{e}");
        }
        check_not_input(&other, [a.as_path()]).unwrap();
        check_not_input(&dir.path().join("new.npy"), [a.as_path()]).unwrap();
        check_not_input(Path::new("-"), [a.as_path()]).unwrap();
    }
}
