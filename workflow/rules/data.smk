# Raw trajectories (download or the user's own files) and the train/val/test split.


rule download:
    """Fetch one Materials Cloud trajectory (resumable, checksummed, validated, atomic).

    md5: pinned in the config, else read from the record's file listing; the file must also
    load and pass the trajectory validator. A compressed .npz is stored uncompressed so that
    later stages can memory-map it. `gdyn download` retries dropped connections itself
    (with Range resumes and backoff), so the rule is not retried: a wrong checksum or an
    error page is reported once, not downloaded three times.
    """
    output:
        L.raw("{system}", "{traj}"),
    wildcard_constraints:
        system=_alternatives(DOWNLOADED),
    params:
        url=download_url,  # functions of the wildcards: an edited url or md5 reruns it
        md5=download_md5,
        argv=lambda wc, output: ["download", download_url(wc), output[0],
                                 *download_md5(wc)],
    log:
        log_path("download", "{system}/{traj}"),
    benchmark:
        bench_path("download", "{system}/{traj}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
    retries: 0  # overrides a profile's retries (slurm): gdyn download retries itself
    conda:
        GDYN_ENV
    script:
        # `gdyn download URL OUT [--md5 MD5]` with no shell: the URL is the user's
        "../scripts/gdyn_command.py"


rule local_trajectory:
    """Validate one of the user's own trajectories and copy it into results/raw."""
    input:
        lambda wc: SYSTEMS[wc.system]["files"][wc.traj]["path"],
    output:
        L.raw("{system}", "{traj}"),
    wildcard_constraints:
        system=_alternatives(LOCAL),
    log:
        log_path("local_trajectory", "{system}/{traj}"),
    benchmark:
        bench_path("local_trajectory", "{system}/{traj}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        argv=lambda wc, input, output: ["check", input[0], "--copy-to", output[0]],
    conda:
        GDYN_ENV
    script:
        # `gdyn check PATH --copy-to OUT` with no shell: PATH is the user's, any characters
        "../scripts/gdyn_command.py"


rule split:
    """Cut one contiguous time window of one trajectory into a train, val or test piece.

    Each piece is its own contiguous segment and later stages form lag pairs (t, t + tau)
    only within one piece, so no pair straddles a split boundary.
    """
    input:
        raw=L.raw("{system}", "{traj}"),
        origin=lambda wc: traj_origin(wc.system, wc.traj),  # see traj_sources (common.smk)
    output:
        L.split_piece("{system}", "{part}", "{traj}"),
    params:
        start=lambda wc: split_piece(wc)[0],
        stop=lambda wc: split_piece(wc)[1],
        time=frame_time_args,
    log:
        log_path("split", "{system}/{part}/{traj}"),
    benchmark:
        bench_path("split", "{system}/{part}/{traj}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        GDYN_ENV
    shell:
        "gdyn split {input.raw:q} {output:q} --start {params.start} --stop {params.stop} "
        "{params.time} > {log:q} 2>&1"
