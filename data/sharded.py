"""Preparing one corpus on several machines: which input files a part takes, and how part metas join.

`python -m data.prepare ... --shard I/N` tokenizes part I (0-based) of N: a contiguous block of the
corpus's input files in reading order. Documents never cross files and every group/split stream is
written in reading order, so concatenating the parts' shards in part order gives exactly the bytes of a
preparation on one machine; `python -m data.prepare --merge PART ... --output DIR` does that, and the
joined meta.json (token and document counts, fingerprint) equals the one-machine meta.json.
"""
import hashlib

from errors import UsageError

def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N), 0 <= I < N; a UsageError naming --shard otherwise."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text}: write it as I/N, part I (0-based) of N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise UsageError(f"--shard {text}: I must lie in 0..N-1")
    return index, count


def part_of(shard, layout: str, files: list, corpus_fingerprint: str, groups) -> dict:
    """The part record of `shard` = (I, N) over `files` ([relative path, size, mtime] in reading order)."""
    index, count = shard
    if layout not in ("jsonl", "slimpajama"):
        raise UsageError(f"--shard: a {layout} input is one dataset, not files that machines can share; "
                         "prepare it on one machine")
    if count > len(files):
        raise UsageError(f"--shard {index}/{count}: the input has only {len(files)} file(s); use at most "
                         f"{len(files)} parts")
    block = files[index * len(files) // count:(index + 1) * len(files) // count]
    digest = hashlib.sha256(f"{corpus_fingerprint}\0{index}/{count}".encode()).hexdigest()
    return {"index": index, "count": count, "files": [f[0] for f in block], "corpus_fingerprint": corpus_fingerprint,
            "fingerprint": digest, "requested_groups": groups}


def check_parts(metas: list, paths: list) -> list:
    """The part metas in part order, after checking that they are the N parts of one preparation."""
    for meta, path in zip(metas, paths):
        if "part" not in meta:
            raise UsageError(f"--merge {path}: not a part of a --shard preparation (its meta.json has no 'part')")
    first = metas[0]["part"]
    for meta, path in zip(metas, paths):
        part = meta["part"]
        if part["corpus_fingerprint"] != first["corpus_fingerprint"] or part["count"] != first["count"]:
            raise UsageError(f"--merge {path}: a part of another preparation (other input files or settings) "
                             f"than {paths[0]}")
    by_index = {}
    for meta, path in zip(metas, paths):
        if meta["part"]["index"] in by_index:
            raise UsageError(f"--merge: part {meta['part']['index']} given twice ({path})")
        by_index[meta["part"]["index"]] = meta
    missing = [i for i in range(first["count"]) if i not in by_index]
    if missing:
        raise UsageError(f"--merge: parts {', '.join(map(str, missing))} of {first['count']} are missing; give "
                         "every part's folder")
    return [by_index[i] for i in range(first["count"])]


def joined_meta(parts: list, groups: list, splits) -> dict:
    """The meta.json of the joined corpus: the one-machine meta, field for field."""
    first = parts[0]
    meta = {key: first[key] for key in ("format", "version", "tokenizer", "tokenizer_sha256", "vocab_size", "dtype",
                                        "eos_id")}
    meta.update(fingerprint=first["part"]["corpus_fingerprint"], source_layout=first["source_layout"],
                split_settings=first["split_settings"])
    meta["groups"] = {g: {s: sum(p["groups"].get(g, {}).get(s, 0) for p in parts) for s in splits} for g in groups}
    meta["documents"] = {g: {s: sum(p["documents"].get(g, {}).get(s, 0) for p in parts) for s in splits}
                         for g in groups}
    meta["skipped_lines"] = sum(p["skipped_lines"] for p in parts)
    meta["skipped_lines_by_file"] = {f: n for p in parts for f, n in p["skipped_lines_by_file"].items()}
    meta["damaged_files"] = [d for p in parts for d in p["damaged_files"]]
    meta["skipped_unknown_set"] = sum(p["skipped_unknown_set"] for p in parts)
    return meta
