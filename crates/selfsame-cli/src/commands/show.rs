//! `selfsame show`

use selfsame::ops::show::show;
use selfsame::Result;

use crate::context::Context;
use crate::output::outln;

/// Show a checkpoint's fields, decoded, and whether its MAC verifies.
///
///   selfsame show        the newest checkpoint
///   selfsame show 3      checkpoint 3
///
/// Exit 0 when the MAC verifies under the token, 4 when it does not.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Checkpoint seq (default: the newest).
    seq: Option<u64>,
}

/// The checkpoint fields that hold a number.
const NUMBERS: &[&str] = &["v", "seq", "files", "bytes", "bot_id"];

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let shown = show(&vault, &token, args.seq)?;
    let (seq, valid) = (shown.seq, shown.mac_valid);
    if ctx.json {
        let fields: serde_json::Map<String, serde_json::Value> = shown
            .fields
            .iter()
            .map(|(k, v)| {
                // The numeric fields as numbers; the rest as stored.
                let value = match (NUMBERS.contains(&k.as_str()), v.parse::<u64>()) {
                    (true, Ok(n)) => n.into(),
                    _ => v.as_str().into(),
                };
                (k.to_owned(), value)
            })
            .collect();
        ctx.print_json(&serde_json::json!({
            "seq": seq,
            "file": shown.file,
            "file_sha256": shown.file_hash,
            "fields": fields,
            "mac_valid": valid,
        }));
    } else {
        outln!("checkpoint {seq} ({})", shown.file.display());
        for (k, v) in &shown.fields {
            outln!("  {k:<10} {v}");
        }
        outln!("  file sha256 {}", shown.file_hash);
        outln!(
            "  MAC: {}",
            if valid {
                "valid under this token"
            } else {
                "INVALID under this token"
            }
        );
    }
    Ok(if valid { 0 } else { 4 })
}
