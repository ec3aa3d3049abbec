"""What a latent generator's decoder lets it reach: FID (classifier features) of an autoencoder's
reconstructions of the floor's real digits (the same uniform NUM of the training split, seed REAL_SEED,
that `jgen eval --real train` scores) against the generators' reference (the test split), beside the
floor itself. A latent model that generated the encoder's own latents exactly, without guidance, would
score the reconstructions' FID. The autoencoder's rFID (`jgen eval` on its run) instead reconstructs
the reference itself and compares the same images, which is lower and not comparable with a
generator's FID. Give every run in one call: the day's results file is written once per call.

  python benchmarks/latent_floor.py runs/ae_mnist5k runs/recipes/ae_mnist5k_s1
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdirs", nargs="+", help="autoencoder runs (jgen train --config ae_mnist5k ...)")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--classifier", default=os.path.join(ROOT, "runs", "classifier_mnist5k"))
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    from jgen import host

    host.configure()
    from benchmarks.timing import write_results
    from jgen.data.sources import with_split
    from jgen.eval import evaluate as E
    from jgen.run import open_run

    rows = []
    for workdir in a.workdirs:
        run = open_run(workdir)
        if run.config.family != "autoencoder":
            raise SystemExit(f"{workdir} is a {run.config.family} run, not an autoencoder")
        data = run.image_config.data
        extractor = E.make_extractor("classifier", data.image_size, data.channels, "", a.classifier)
        real, _, _ = E.reference_features(data, E.reference_spec(data.source, "test"), a.num, extractor, run.mesh)
        images = E.subset_images(data, with_split(data.source, "train"), a.num, E.REAL_SEED)
        for what, ims in (("real training digits (the floor)", images),
                          ("their reconstructions", E.reconstructions(run.reconstruct(True), images, run.mesh, 250))):
            fake, logits = E.extract(extractor, ims, run.mesh)
            m = E.compute_metrics(real, fake, logits, ("fid", "conf"), "_classifier")
            rows.append(dict(run=workdir, step=int(run.state.step), images=what, fid=float(m["fid_classifier"]),
                             confident=float(m["confident_classifier"]),
                             psnr=None if ims is images else E.psnr_uint8(images, ims)))
    text = "\n".join(["| autoencoder run | step | images | FID (clf) | p>=0.9 | PSNR dB |", "|---|---|---|---|---|---|"] + [
        f"| {r['run']} | {r['step']} | {r['images']} | {r['fid']:.1f} | {r['confident']:.3f} | "
        f"{'-' if r['psnr'] is None else format(r['psnr'], '.1f')} |" for r in rows])
    heading = (f"What a latent generator can reach through each autoencoder: {a.num} training digits and their "
               f"reconstructions against the test digits, {time.strftime('%Y-%m-%d')} "
               "(`python benchmarks/latent_floor.py`)")
    write_results(a.out, "latent-floor", heading, text, rows)


if __name__ == "__main__":
    main()
