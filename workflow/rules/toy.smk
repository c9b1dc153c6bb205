# The embedded default: the paper's toy system simulated with OpenMM (offline).


rule simulate_toy:
    """Run one OpenMM job: a batch of independent Li in the frozen FCC S lattice."""
    output:
        "results/simulated/{system}/job{job}.npz",
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
        "gdyn simulate-toy {output} --li {params.li} --settings {params.settings} "
        "--frame-interval-ps {params.frame_interval_ps} > {log} 2>&1"


rule toy_cell:
    """Store one simulated Li as its own 5-atom (1 Li + 4 S) periodic trajectory."""
    input:
        lambda wc: f"results/simulated/{wc.system}/job{toy_job_of(wc.system, int(wc.li))}.npz",
    output:
        "results/raw/{system}/li{li}.npz",
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
        "gdyn toy-cell {input} {output} --li {wildcards.li} > {log} 2>&1"


rule toy_energy:
    """Energy along the tet-oct-tet path of the toy potential (Fig. 2a)."""
    output:
        csv="results/toy/{system}/energy_path.csv",
        png="results/toy/{system}/energy_path.png",
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
        "gdyn toy-energy {output.csv} --png {output.png} --settings {params.settings} > {log} 2>&1"
