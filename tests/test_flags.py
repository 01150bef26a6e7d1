from pipeline import flags


def test_flags_json_matches_the_registries():
    # Stale after a change to models/, regularizers/ or pipeline/: run `python -m pipeline.flags`.
    cached = flags.table()
    assert cached == flags.build(), "pipeline/flags.json is stale: run `python -m pipeline.flags`"
    assert flags.json.loads(flags.TABLE_PATH.read_text())["sources_sha256"] == flags.sources_sha256()
