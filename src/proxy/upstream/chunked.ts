import { MalformedAnswer } from './responseHead.js';

/**
 * A chunked answer body decoded as it arrives (RFC 9112, 7.1), strictly: a chunk size is
 * 1–13 hex digits (below 2^52), an extension has no control byte but HTAB, every line ends
 * in CRLF, trailers are read and dropped (berth relays none), and their section is bounded.
 * The data goes on as slices of the bytes received, never copied.
 */
export class ChunkedBody {
  private state: State = State.Size;
  private digits = 0;
  private remaining = 0;
  private trailerBytes = 0;

  /** Whether the last chunk and the trailer section are in. */
  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Reads `bytes` from `at`, handing each run of chunk data to `data`. Returns where it
   * stopped: the end of `bytes`, or just past the body once it is complete. Throws
   * MalformedAnswer.
   */
  read(bytes: Buffer, at: number, data: (slice: Buffer) => void): number {
    const n = bytes.length;
    let i = at;
    while (i < n) {
      switch (this.state) {
        case State.Data: {
          const take = Math.min(this.remaining, n - i);
          data(bytes.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.DataCr;
          break;
        }
        case State.Size: {
          const c = bytes[i++]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > 13) throw new MalformedAnswer('chunk size too large');
            this.remaining = this.remaining * 16 + v;
          } else if (this.digits === 0) throw new MalformedAnswer('chunk size missing');
          else if (c === 0x0d) this.state = State.SizeLf;
          else if (c === 0x3b /* ; */) this.state = State.Extension;
          else throw new MalformedAnswer('malformed chunk size');
          break;
        }
        case State.Extension: {
          const c = bytes[i++]!;
          if (c === 0x0d) this.state = State.SizeLf;
          else if (isControl(c)) throw new MalformedAnswer('control byte in a chunk extension');
          break;
        }
        case State.SizeLf: {
          if (bytes[i++] !== 0x0a) throw new MalformedAnswer('chunk size line not ended by CRLF');
          this.digits = 0;
          this.state = this.remaining === 0 ? State.TrailerStart : State.Data;
          break;
        }
        case State.DataCr:
          if (bytes[i++] !== 0x0d) throw new MalformedAnswer('chunk data not followed by CRLF');
          this.state = State.DataLf;
          break;
        case State.DataLf:
          if (bytes[i++] !== 0x0a) throw new MalformedAnswer('chunk data not followed by CRLF');
          this.state = State.Size;
          break;
        case State.TrailerStart: {
          const c = bytes[i++]!;
          this.countTrailer();
          if (c === 0x0d) this.state = State.FinalLf;
          else if (c === 0x20 || c === 0x09) throw new MalformedAnswer('folded trailer line');
          else if (isControl(c) || c === 0x3a /* : */) throw new MalformedAnswer('malformed trailer line');
          else this.state = State.Trailer;
          break;
        }
        case State.Trailer: {
          const c = bytes[i++]!;
          this.countTrailer();
          if (c === 0x0d) this.state = State.TrailerLf;
          else if (isControl(c)) throw new MalformedAnswer('control byte in a trailer line');
          break;
        }
        case State.TrailerLf:
          if (bytes[i++] !== 0x0a) throw new MalformedAnswer('trailer line not ended by CRLF');
          this.state = State.TrailerStart;
          break;
        case State.FinalLf:
          if (bytes[i++] !== 0x0a) throw new MalformedAnswer('chunked body not ended by CRLF');
          this.state = State.Done;
          return i;
        case State.Done:
          return i;
      }
    }
    return i;
  }

  private countTrailer(): void {
    if (++this.trailerBytes > TRAILER_LIMIT) throw new MalformedAnswer('trailer section too large');
  }
}

const TRAILER_LIMIT = 16 * 1024;

/** Where the decoder is in the body. */
const State = {
  Size: 0,
  Extension: 1,
  SizeLf: 2,
  Data: 3,
  DataCr: 4,
  DataLf: 5,
  TrailerStart: 6,
  Trailer: 7,
  TrailerLf: 8,
  FinalLf: 9,
  Done: 10,
} as const;
type State = (typeof State)[keyof typeof State];

/** A control byte, HTAB excepted (what RFC 9112 allows in field values and extensions). */
const isControl = (c: number): boolean => (c < 0x20 && c !== 0x09) || c === 0x7f;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}
