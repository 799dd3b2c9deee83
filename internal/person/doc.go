// Package person is everything Lethe knows about the person a request is
// about, and how it keeps that from being readable for longer than it must:
//
//   - a subject reference ([Ref], made by a [Hasher]): a keyed hash of the
//     person's identifiers that can stand in workflow ids, search attributes,
//     logs and the audit trail without revealing who the person is;
//   - the request's [Identity]: the one piece of personal data a request must
//     carry (their email and/or the company's user id), sealed with [Seal]
//     and opened with [Open];
//   - the person's own data key, kept by a [Keyring]: destroying it after an
//     erasure makes every copy of what was sealed with it unreadable (Lethe's
//     database and its backups, and the Temporal histories that carried it).
//
// # Keys
//
// The keyring crypto-shreds the personal data Lethe itself has to keep
// for a while: request identities, export bundle metadata, notices.
//
// Each person, known only by their subject reference (a keyed hash such as
// "sr_ab12…", never an email address), gets a random 256-bit data key on first
// use. Data is sealed with it (AES-256-GCM) wherever it is stored; the key
// itself lives in lethe.subject_keys, wrapped with a master key that is never
// stored in the database. [Keyring.Destroy] deletes the wrapped key and leaves
// a tombstone, after which every copy of the person's sealed data, wherever
// it was copied to, is unreadable.
//
// Destruction ends what was sealed, not the person's rights: someone erased
// who comes back (signs up again, asks for their data) gets a new key, the
// next generation of keys for the same subject reference, at their next
// [Keyring.Seal]. Sealed data names the generation it was sealed with, so data of a
// destroyed generation stays unreadable ([ErrKeyDestroyed]) whatever
// generation is live; at most one generation is live at a time. Sealing for
// an erased person does the same work as sealing for someone never seen, so
// neither the answer nor its timing tells who was erased.
//
// Every [Keyring.Seal] and [Keyring.Open] reads the key's row: there is no in-memory cache, so
// a Destroy in one process holds at once in every other.
//
// Master keys are [github.com/lethe-privacy/lethe/internal/config.Key] values like the payload keys, but must be
// separate key material. The first one wraps new data keys; all of them
// unwrap, so a master key can be rotated by putting a new one first.
// [Keyring.Rewrap] then moves existing data keys to it, page by page, and
// [CountKeys] shows when nothing live is wrapped under an old one any more
// (`starter keys add-master`, `rewrap`, `status`, `retire`).
//
// Completeness of shredding: copies of lethe.subject_keys made before a
// Destroy (database backups, WAL archives, not yet vacuumed row versions)
// still hold the wrapped key, readable with the master key that wrapped it.
// Shredding is therefore complete once those copies expire, or once the
// master key they need is retired: rotate the master key, run Rewrap, and
// drop the old master key when the last backup taken before the rewrap has
// expired.
package person
