# Extra outputs on request (`export:` in a system's config; none by default, issue 25).


rule export_memberships:
    """A test piece's frames (strided to gdyn.export.MAX_FRAMES) with per-atom state
    probabilities and argmax state, as extended XYZ for OVITO / ASE."""
    input:
        test=lambda wc: L.split_piece(wc.system, "test", wc.traj),
        probs=analysed_probs,
        summary=analysed_summary,
        sources=lambda wc: traj_sources(wc.system, wc.traj),
    output:
        L.export_memberships("{system}", "{traj}"),
    log:
        log_path("export_memberships", "{system}/{traj}"),
    benchmark:
        bench_path("export_memberships", "{system}/{traj}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        GDYN_ENV
    shell:
        "gdyn export-memberships {output:q} --test {input.test:q} --probs {input.probs:q} "
        "--summary {input.summary:q} > {log:q} 2>&1"
