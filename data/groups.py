"""SlimPajama group names.

Short names are what users pass in `--slice_list`; the long names are the values of
`meta.redpajama_set_name` in SlimPajama's JSON lines. The order is the paper's default order
(arxiv, book, cc, c4, ...), which is NOT alphabetical: code must never assume that results come back
in alphabetical order; everything in this project is keyed by group name.
"""

SUBSET2META = {
    "arxiv": "RedPajamaArXiv",
    "book": "RedPajamaBook",
    "cc": "RedPajamaCommonCrawl",
    "c4": "RedPajamaC4",
    "github": "RedPajamaGithub",
    "stackexchange": "RedPajamaStackExchange",
    "wikipedia": "RedPajamaWikipedia",
}
META2SUBSET = {meta: short for short, meta in SUBSET2META.items()}
SLIMPAJAMA_GROUPS = list(SUBSET2META)
