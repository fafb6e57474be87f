//! A line diff (longest common subsequence) between the file on disk and the preview.
//! nginx configs are a few hundred lines, so the quadratic table is small; inputs too
//! big for it are shown as a whole replacement instead.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Same,
    /// Only in the new text (the preview).
    Added,
    /// Only in the old text (the file).
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub change: Change,
    pub text: String,
}

/// Cells of the LCS table above which the diff gives up on alignment.
const MAX_CELLS: usize = 4_000_000;

pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let a = &old[prefix..old.len() - suffix];
    let b = &new[prefix..new.len() - suffix];
    let line = |change, text: &str| DiffLine {
        change,
        text: text.to_string(),
    };
    let mut out: Vec<DiffLine> = old[..prefix]
        .iter()
        .map(|t| line(Change::Same, t))
        .collect();
    if (a.len() + 1) * (b.len() + 1) > MAX_CELLS {
        out.extend(a.iter().map(|t| line(Change::Removed, t)));
        out.extend(b.iter().map(|t| line(Change::Added, t)));
    } else {
        // lcs[i][j]: length of the LCS of a[i..] and b[j..].
        let width = b.len() + 1;
        let mut lcs = vec![0u32; (a.len() + 1) * width];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i * width + j] = if a[i] == b[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i] == b[j] {
                out.push(line(Change::Same, a[i]));
                i += 1;
                j += 1;
            } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
                out.push(line(Change::Removed, a[i]));
                i += 1;
            } else {
                out.push(line(Change::Added, b[j]));
                j += 1;
            }
        }
        out.extend(a[i..].iter().map(|t| line(Change::Removed, t)));
        out.extend(b[j..].iter().map(|t| line(Change::Added, t)));
    }
    out.extend(
        old[old.len() - suffix..]
            .iter()
            .map(|t| line(Change::Same, t)),
    );
    out
}

/// (added, removed) line counts.
pub fn summary(diff: &[DiffLine]) -> (usize, usize) {
    let count = |c| diff.iter().filter(|l| l.change == c).count();
    (count(Change::Added), count(Change::Removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(diff: &[DiffLine]) -> Vec<String> {
        diff.iter()
            .map(|l| {
                let sign = match l.change {
                    Change::Same => ' ',
                    Change::Added => '+',
                    Change::Removed => '-',
                };
                format!("{sign}{}", l.text)
            })
            .collect()
    }

    #[test]
    fn shows_changed_lines_in_place() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        assert_eq!(
            render(&diff_lines(old, new)),
            [" a", "-b", "+B", " c", " d", "+e"]
        );
        assert_eq!(summary(&diff_lines(old, new)), (2, 1));
    }

    #[test]
    fn identical_and_empty_inputs() {
        assert_eq!(summary(&diff_lines("x\ny\n", "x\ny\n")), (0, 0));
        assert_eq!(render(&diff_lines("", "x\n")), ["+x"]);
        assert_eq!(render(&diff_lines("x\n", "")), ["-x"]);
        assert!(diff_lines("", "").is_empty());
    }

    #[test]
    fn moved_block_is_a_removal_and_an_addition() {
        let d = diff_lines("1\n2\n3\n", "3\n1\n2\n");
        assert_eq!(summary(&d), (1, 1));
    }
}
