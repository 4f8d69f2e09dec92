// An OCI image layout writer, shared by the end-to-end tests (test/helpers/oci.ts) and the
// soak bench. Plain JavaScript so that bench scripts run it with node alone.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A file inside a ustar archive: 512-byte header, data, padding to 512. */
function tarHeader(name, size) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/**
 * Writes an OCI image layout with uncompressed layers of random content (one file each),
 * so every run uploads blobs no registry or client cache has seen.
 */
/** @returns {{ dir: string, tag: string, layerDigests: string[], manifestDigest: string }} */
export function writeOciImage(dir, layerSizes, tag = 'test') {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data) => {
    const hex = crypto.createHash('sha256').update(data).digest('hex');
    fs.writeFileSync(path.join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layers = layerSizes.map((size, i) => {
    const body = crypto.randomBytes(size);
    const pad = Buffer.alloc((512 - (size % 512)) % 512);
    return put(Buffer.concat([tarHeader(`layer${i}.bin`, size), body, pad, Buffer.alloc(1024)]));
  });
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } },
      ],
    }),
  );
  return { dir, tag, layerDigests: layers.map((l) => l.digest), manifestDigest: manifest.digest };
}
