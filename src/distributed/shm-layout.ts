// Memory layout of a shared-memory group: the control block (one Int32Array of synchronisation counters
// shared by all ranks) and each rank's mailbox (two chunk slots, so a rank fills round t+1 while the
// others still read round t). Offsets are in int32 words unless named *Bytes.

/** Group-wide words at the start of the control block. */
export const GROUP_FAULT = 0; // 0 while healthy; 1 once any rank declared the group failed
export const GROUP_FAULT_PEER = 1; // the rank held responsible, or -1
export const GROUP_FAULT_MSG_BYTES = 2; // length of the UTF-8 fault message

/** Per-rank words: rank r's block starts at rankBase(r). Each block has its own 64-byte cache line. */
export const RANK_JOINED = 0; // 1 once the rank's communication thread joined
export const RANK_CLOSED = 1; // 1 once the rank closed its communicator (or its thread ended)
export const RANK_HEARTBEAT = 2; // bumped by the communication thread at least every HEARTBEAT_PERIOD_MS
export const RANK_ARRIVE = 3; // 2t-1 when the rank filled its slot of round t, 2t after its reduction phase
export const RANK_DEPART = 4; // t when the rank finished reading round t (its slot may be reused at t+2)

const RANK_BLOCK_WORDS = 16;
const FIRST_RANK_WORD = 16;
const FAULT_MESSAGE_CAPACITY = 2048;

export const HEARTBEAT_PERIOD_MS = 50;

export function rankBase(rank: number): number {
  return FIRST_RANK_WORD + rank * RANK_BLOCK_WORDS;
}

/** Byte offset of the fault message area. */
export function faultMessageOffset(worldSize: number): number {
  return rankBase(worldSize) * 4;
}

export const FAULT_MESSAGE_CAPACITY_BYTES = FAULT_MESSAGE_CAPACITY;

export function allocateSharedControl(worldSize: number): SharedArrayBuffer {
  return new SharedArrayBuffer(faultMessageOffset(worldSize) + FAULT_MESSAGE_CAPACITY);
}

/** Slot header words (int32) at the start of each slot. */
export const SLOT_SEQ = 0; // the collective's sequence number (mod 2^32), written in its first round
export const SLOT_KIND = 1; // OpKind
export const SLOT_CHECK = 2; // a checksum of the sizes every rank must agree on
export const SLOT_ROUNDS = 3; // rounds this rank needs (all-to-all: the group runs the maximum)
export const SLOT_HEADER_BYTES = 64;

/** Bytes of one slot: header, data area (chunkBytes), reduced area (chunkBytes). */
export function slotBytes(chunkBytes: number): number {
  return SLOT_HEADER_BYTES + 2 * chunkBytes;
}

export const SLOTS_PER_MAILBOX = 2;

export function allocateSharedMailbox(chunkBytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS_PER_MAILBOX * slotBytes(chunkBytes));
}

/** Views of one mailbox slot. */
export interface MailboxSlot {
  readonly header: Int32Array; // [16]
  readonly data: Uint8Array; // [chunkBytes] the rank's contribution to this round
  readonly dataF32: Float32Array; // [chunkBytes / 4] same memory
  readonly reduced: Float32Array; // [chunkBytes / 4] the rank's reduced sub-slice (two-phase rounds)
}

export function mailboxSlots(mailbox: SharedArrayBuffer, chunkBytes: number): MailboxSlot[] {
  return Array.from({ length: SLOTS_PER_MAILBOX }, (_, s) => {
    const base = s * slotBytes(chunkBytes);
    const dataAt = base + SLOT_HEADER_BYTES;
    return {
      header: new Int32Array(mailbox, base, SLOT_HEADER_BYTES / 4),
      data: new Uint8Array(mailbox, dataAt, chunkBytes),
      dataF32: new Float32Array(mailbox, dataAt, chunkBytes / 4),
      reduced: new Float32Array(mailbox, dataAt + chunkBytes, chunkBytes / 4),
    };
  });
}
