// The writer lives with the benches (plain JavaScript, for node alone); tests use it from here.
export { writeOciImage, type OciImage } from '../../bench/lib/oci.mjs';
