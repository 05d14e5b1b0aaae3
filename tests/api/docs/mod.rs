//! The documentation as a reader finds it — README.md and docs/*.md — held to the code: every
//! shell block runs as written ([`blocks`]), and every route, environment variable and
//! command-line verb they name exists ([`names`]).

mod blocks;
mod names;

use std::path::Path;

/// One Markdown file: its path from the repository root and its text.
pub struct Document {
    pub path: String,
    pub text: String,
}

/// README.md, then docs/*.md by name: the order a reader meets them in.
pub fn documents() -> Vec<Document> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|path| Document {
            text: std::fs::read_to_string(root.join(&path)).unwrap(),
            path,
        })
        .collect()
}

/// A fenced code block.
pub struct Fence {
    /// Line of the opening fence, from 1.
    pub line: usize,
    /// The first word of the info string (`sh`, `yaml`, …; empty when there is none).
    pub lang: String,
    pub body: Vec<String>,
    /// The `## ` heading the block stands under (the document's title before the first).
    pub section: String,
    /// Why it is not run: the `<!-- no-run: why -->` comment on the line before its fence.
    pub no_run: Option<String>,
}

/// The HTML comment that marks the next block as one the README test does not run.
const NO_RUN: &str = "<!-- no-run:";

impl Document {
    pub fn fences(&self) -> Vec<Fence> {
        let mut fences = Vec::new();
        let mut section = String::new();
        let mut previous = "";
        let mut open: Option<Fence> = None;
        for (index, line) in self.text.lines().enumerate() {
            if let Some(fence) = open.as_mut() {
                if line.starts_with("```") {
                    fences.extend(open.take());
                } else {
                    fence.body.push(line.to_owned());
                }
            } else if let Some(info) = line.strip_prefix("```") {
                let no_run = previous
                    .trim()
                    .strip_prefix(NO_RUN)
                    .map(|why| why.trim_end().trim_end_matches("-->").trim().to_owned());
                open = Some(Fence {
                    line: index + 1,
                    lang: info.split_whitespace().next().unwrap_or("").to_owned(),
                    body: Vec::new(),
                    section: section.clone(),
                    no_run,
                });
            } else if let Some(heading) =
                line.strip_prefix("## ").or_else(|| line.strip_prefix("# "))
            {
                section = heading.trim().to_owned();
            }
            previous = line;
        }
        assert!(
            open.is_none(),
            "{}: a code block is never closed",
            self.path
        );
        fences
    }

    /// The text outside code blocks, with each block's lines left blank so that line numbers
    /// still hold.
    pub fn prose(&self) -> String {
        let mut prose = String::new();
        let mut inside = false;
        for line in self.text.lines() {
            if line.starts_with("```") {
                inside = !inside;
            } else if !inside {
                prose.push_str(line);
            }
            prose.push('\n');
        }
        prose
    }
}
