# The embedded default: the paper's toy system simulated with OpenMM (offline).


rule simulate_toy:
    """Run one OpenMM job: a batch of independent Li in the frozen FCC S lattice."""
    output:
        L.simulated_job("{system}", "{job}"),
    wildcard_constraints:
        system=_alternatives(SIMULATED),
        job=r"\d+",
    params:
        settings=lambda wc: settings("simulate", wc.system),
        li=lambda wc: ",".join(str(i) for i in toy_jobs(wc.system)[int(wc.job)]),
        frame_interval_ps=lambda wc: SYSTEMS[wc.system]["frame_interval_ps"],
    log:
        log_path("simulate_toy", "{system}/job{job}"),
    benchmark:
        bench_path("simulate_toy", "{system}/job{job}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        GDYN_ENV
    shell:
        "gdyn simulate-toy {output:q} --li {params.li} --settings {params.settings} "
        "--frame-interval-ps {params.frame_interval_ps} > {log:q} 2>&1"


rule toy_cell:
    """Store one simulated Li as its own 5-atom (1 Li + 4 S) periodic trajectory."""
    input:
        lambda wc: L.simulated_job(wc.system, toy_job_of(wc.system, int(wc.li))),
    output:
        L.raw("{system}", "li{li}"),
    wildcard_constraints:
        system=_alternatives(SIMULATED),
        li=r"\d+",
    log:
        log_path("toy_cell", "{system}/li{li}"),
    benchmark:
        bench_path("toy_cell", "{system}/li{li}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn toy-cell {input:q} {output:q} --li {wildcards.li} > {log:q} 2>&1"


rule toy_energy:
    """Energy along the tet-oct-tet path of the toy potential (Fig. 2a)."""
    output:
        csv=L.toy_energy("{system}", "csv"),
        png=L.toy_energy("{system}", "png"),
    params:
        settings=lambda wc: settings("simulate", wc.system)
        if "simulate" in SYSTEMS[wc.system]
        else shlex.quote("{}"),
    log:
        log_path("toy_energy", "{system}"),
    benchmark:
        bench_path("toy_energy", "{system}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn toy-energy {output.csv:q} --png {output.png:q} --settings {params.settings} > {log:q} 2>&1"
