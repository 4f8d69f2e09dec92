export interface OciImage {
  readonly dir: string;
  readonly tag: string;
  /** sha256 digests of the uncompressed layers (the image config's diff_ids). */
  readonly layerDigests: readonly string[];
  readonly manifestDigest: string;
}

/**
 * Writes an OCI image layout with uncompressed layers of random content (one file each),
 * so every run uploads blobs no registry or client cache has seen.
 */
export function writeOciImage(dir: string, layerSizes: readonly number[], tag?: string): OciImage;
