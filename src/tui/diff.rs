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
/// Unchanged lines kept around each change in the hunk view.
pub const CONTEXT: usize = 3;

/// The diff as hunks: changed lines with `context` unchanged lines around them; each
/// run of unchanged lines left out is one `None` (shown as "⋯ N unchanged lines").
pub fn hunks(diff: &[DiffLine], context: usize) -> Vec<Result<&DiffLine, usize>> {
    let near_change = |i: usize| {
        let from = i.saturating_sub(context);
        let to = (i + context + 1).min(diff.len());
        diff[from..to].iter().any(|l| l.change != Change::Same)
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for (i, line) in diff.iter().enumerate() {
        if near_change(i) {
            if skipped > 0 {
                out.push(Err(skipped));
                skipped = 0;
            }
            out.push(Ok(line));
        } else {
            skipped += 1;
        }
    }
    if skipped > 0 {
        out.push(Err(skipped));
    }
    out
}

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
    fn hunks_keep_changes_with_their_context_and_count_what_they_leave_out() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 10\n", "line ten\n");
        let diff = diff_lines(&old, &new);
        let shown = hunks(&diff, 2);
        assert_eq!(shown.first(), Some(&Err(7)), "lines 1-7 left out");
        assert_eq!(shown.last(), Some(&Err(8)), "lines 13-20 left out");
        let kept: Vec<&str> = shown
            .iter()
            .filter_map(|l| l.ok())
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(
            kept,
            [
                "line 8", "line 9", "line 10", "line ten", "line 11", "line 12"
            ]
        );
        assert!(hunks(&diff_lines(&old, &old), 3).iter().all(|l| l.is_err()));
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
