package s3local

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	bolt "go.etcd.io/bbolt"
)

// fileStore is a gofakes3 backend that keeps buckets, every object version
// and every delete marker in a BoltDB file. It implements versioning as S3
// does (gofakes3's own BoltDB backend does not): PutBucketVersioning,
// ListObjectVersions with exact key and version-id markers, deleting a
// version or a delete marker, suspended versioning with its "null"
// version. Every change is committed to the file before it is answered, so
// a restart (or a crash) keeps objects, version ids and times.
//
// Layout: the bolt bucket "buckets" maps a bucket name to its settings;
// "o/<bucket>" maps an object key to its versions, oldest first; "b/<bucket>"
// maps a blob id to a version's body.
type fileStore struct {
	db *bolt.DB
	// now is the clock of new versions.
	now func() time.Time

	mu   sync.Mutex // guards last
	last int64      // the newest id's time, so ids grow within a run
}

var (
	_ gofakes3.Backend          = (*fileStore)(nil)
	_ gofakes3.VersionedBackend = (*fileStore)(nil)
)

var bucketsKey = []byte("buckets")

type bucketInfo struct {
	Created    time.Time                 `json:"created"`
	Versioning gofakes3.VersioningStatus `json:"versioning,omitempty"`
}

// storedVersion is one version of an object, or a delete marker.
type storedVersion struct {
	// ID is the version id; empty for the "null" version (written while
	// versioning was never enabled, or suspended).
	ID     string            `json:"id,omitempty"`
	Blob   string            `json:"blob,omitempty"` // key of the body in "b/<bucket>"; empty for a marker
	Time   time.Time         `json:"time"`
	Marker bool              `json:"marker,omitempty"`
	Size   int64             `json:"size,omitempty"`
	Hash   []byte            `json:"hash,omitempty"`
	Meta   map[string]string `json:"meta,omitempty"`
}

// public is the version id as clients name it: "null" for the null version.
func (v storedVersion) public() string {
	if v.ID == "" {
		return "null"
	}
	return v.ID
}

func objectsKey(bucket string) []byte { return []byte("o/" + bucket) }
func blobsKey(bucket string) []byte   { return []byte("b/" + bucket) }

// openFileStore opens (creating when missing) the store at path.
func openFileStore(path string) (*fileStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketsKey)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("s3 store %s: %w", path, err)
	}
	return &fileStore{db: db, now: time.Now}, nil
}

func (s *fileStore) Close() error { return s.db.Close() }

// newID is a fresh version or blob id: the time in nanoseconds (growing
// within a run) and 32 random bits, so ids of one key sort by age and two
// runs never hand out the same id.
func (s *fileStore) newID() string {
	s.mu.Lock()
	t := s.now().UnixNano()
	if t <= s.last {
		t = s.last + 1
	}
	s.last = t
	s.mu.Unlock()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// bucket reads a bucket's settings; a missing bucket is NoSuchBucket.
func bucket(tx *bolt.Tx, name string) (bucketInfo, error) {
	var info bucketInfo
	raw := tx.Bucket(bucketsKey).Get([]byte(name))
	if raw == nil {
		return info, gofakes3.BucketNotFound(name)
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return info, fmt.Errorf("s3 store: bucket %s: %w", name, err)
	}
	return info, nil
}

func versionsOf(raw []byte) ([]storedVersion, error) {
	if raw == nil {
		return nil, nil
	}
	var vs []storedVersion
	if err := json.Unmarshal(raw, &vs); err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	return vs, nil
}

// saveVersions writes an object's versions, removing the key when none is left.
func saveVersions(tx *bolt.Tx, bucketName, key string, vs []storedVersion) error {
	objs := tx.Bucket(objectsKey(bucketName))
	if len(vs) == 0 {
		return objs.Delete([]byte(key))
	}
	raw, err := json.Marshal(vs)
	if err != nil {
		return err
	}
	return objs.Put([]byte(key), raw)
}

// dropVersion removes vs[i] and its body.
func dropVersion(tx *bolt.Tx, bucketName string, vs []storedVersion, i int) ([]storedVersion, error) {
	if b := vs[i].Blob; b != "" {
		if err := tx.Bucket(blobsKey(bucketName)).Delete([]byte(b)); err != nil {
			return vs, err
		}
	}
	return append(vs[:i:i], vs[i+1:]...), nil
}

// dropNull removes the null version, if any: unversioned and suspended
// writes replace it.
func dropNull(tx *bolt.Tx, bucketName string, vs []storedVersion) ([]storedVersion, error) {
	for i, v := range vs {
		if v.ID == "" {
			return dropVersion(tx, bucketName, vs, i)
		}
	}
	return vs, nil
}

func (s *fileStore) ListBuckets() ([]gofakes3.BucketInfo, error) {
	var out []gofakes3.BucketInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketsKey).ForEach(func(k, v []byte) error {
			var info bucketInfo
			if err := json.Unmarshal(v, &info); err != nil {
				return err
			}
			out = append(out, gofakes3.BucketInfo{Name: string(k), CreationDate: gofakes3.NewContentTime(info.Created)})
			return nil
		})
	})
	return out, err
}

func (s *fileStore) CreateBucket(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketsKey).Get([]byte(name)) != nil {
			return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
		}
		raw, _ := json.Marshal(bucketInfo{Created: s.now().UTC()})
		if err := tx.Bucket(bucketsKey).Put([]byte(name), raw); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(objectsKey(name)); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(blobsKey(name))
		return err
	})
}

func (s *fileStore) BucketExists(name string) (bool, error) {
	exists := false
	err := s.db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketsKey).Get([]byte(name)) != nil
		return nil
	})
	return exists, err
}

func (s *fileStore) DeleteBucket(name string) error { return s.deleteBucket(name, false) }

func (s *fileStore) ForceDeleteBucket(name string) error { return s.deleteBucket(name, true) }

func (s *fileStore) deleteBucket(name string, force bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketsKey).Get([]byte(name)) == nil {
			return gofakes3.ErrNoSuchBucket
		}
		if k, _ := tx.Bucket(objectsKey(name)).Cursor().First(); k != nil && !force {
			return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
		}
		for _, b := range [][]byte{objectsKey(name), blobsKey(name)} {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
		}
		return tx.Bucket(bucketsKey).Delete([]byte(name))
	})
}

// walk visits the keys of a bucket in order, from the first key at or
// after start that has the prefix, until visit returns false.
func walk(tx *bolt.Tx, bucketName string, prefix *gofakes3.Prefix, start string, visit func(key string, vs []storedVersion) (bool, error)) error {
	c := tx.Bucket(objectsKey(bucketName)).Cursor()
	if prefix.HasPrefix && prefix.Prefix > start {
		start = prefix.Prefix
	}
	for k, raw := c.Seek([]byte(start)); k != nil; k, raw = c.Next() {
		key := string(k)
		if prefix.HasPrefix && !strings.HasPrefix(key, prefix.Prefix) {
			return nil // keys with the prefix are contiguous, and behind us
		}
		vs, err := versionsOf(raw)
		if err != nil {
			return err
		}
		more, err := visit(key, vs)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (s *fileStore) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	out := gofakes3.NewObjectList()
	err := s.db.View(func(tx *bolt.Tx) error {
		if _, err := bucket(tx, name); err != nil {
			return err
		}
		var count int64
		var last, lastPrefix string
		return walk(tx, name, prefix, page.Marker, func(key string, vs []storedVersion) (bool, error) {
			if page.HasMarker && key <= page.Marker {
				return true, nil
			}
			latest := vs[len(vs)-1]
			var match gofakes3.PrefixMatch
			if latest.Marker || !prefix.Match(key, &match) {
				return true, nil
			}
			if match.CommonPrefix && (match.MatchedPart == lastPrefix || page.HasMarker && match.MatchedPart <= page.Marker) {
				return true, nil
			}
			if page.MaxKeys > 0 && count == page.MaxKeys {
				out.IsTruncated, out.NextMarker = true, last
				return false, nil
			}
			count++
			if match.CommonPrefix {
				out.AddPrefix(match.MatchedPart)
				last, lastPrefix = match.MatchedPart, match.MatchedPart
				return true, nil
			}
			out.Add(&gofakes3.Content{Key: key, LastModified: gofakes3.NewContentTime(latest.Time),
				ETag: gofakes3.FormatETag(latest.Hash), Size: latest.Size})
			last = key
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *fileStore) ListBucketVersions(name string, prefix *gofakes3.Prefix, page *gofakes3.ListBucketVersionsPage) (*gofakes3.ListBucketVersionsResult, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	if page == nil {
		page = &gofakes3.ListBucketVersionsPage{}
	}
	out := gofakes3.NewListBucketVersionsResult(name, prefix, page)
	max := page.MaxKeys
	if max <= 0 {
		max = gofakes3.DefaultBucketVersionKeys
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if _, err := bucket(tx, name); err != nil {
			return err
		}
		var count int64
		var lastKey, lastVersion, lastPrefix string
		full := func() bool {
			if count < max {
				return false
			}
			out.IsTruncated, out.NextKeyMarker, out.NextVersionIDMarker = true, lastKey, gofakes3.VersionID(lastVersion)
			return true
		}
		return walk(tx, name, prefix, page.KeyMarker, func(key string, vs []storedVersion) (bool, error) {
			if page.HasKeyMarker && (key < page.KeyMarker || key == page.KeyMarker && !page.HasVersionIDMarker) {
				return true, nil // a key marker alone: the keys after it
			}
			var match gofakes3.PrefixMatch
			if !prefix.Match(key, &match) {
				return true, nil
			}
			if match.CommonPrefix {
				if match.MatchedPart == lastPrefix || page.HasKeyMarker && match.MatchedPart <= page.KeyMarker {
					return true, nil
				}
				if full() {
					return false, nil
				}
				count++
				out.AddPrefix(match.MatchedPart)
				lastKey, lastVersion, lastPrefix = match.MatchedPart, "", match.MatchedPart
				return true, nil
			}
			// Newest first; with a version-id marker on its key, after that version.
			skipping := page.HasKeyMarker && key == page.KeyMarker
			for i := len(vs) - 1; i >= 0; i-- {
				v := vs[i]
				if skipping {
					skipping = v.public() != string(page.VersionIDMarker)
					continue
				}
				if full() {
					return false, nil
				}
				count++
				at := gofakes3.NewContentTime(v.Time)
				if v.Marker {
					out.Versions = append(out.Versions, &gofakes3.DeleteMarker{Key: key, VersionID: gofakes3.VersionID(v.public()),
						IsLatest: i == len(vs)-1, LastModified: at})
				} else {
					out.Versions = append(out.Versions, &gofakes3.Version{Key: key, VersionID: gofakes3.VersionID(v.public()),
						IsLatest: i == len(vs)-1, LastModified: at, Size: v.Size, ETag: gofakes3.FormatETag(v.Hash)})
				}
				lastKey, lastVersion = key, v.public()
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// find returns the object's versions and the index of the one asked for:
// the latest when versionID is empty (-1 when the key has none, or its
// latest is a delete marker), else the version with that public id (-1 when
// there is none).
func find(tx *bolt.Tx, bucketName, key, versionID string) ([]storedVersion, int, error) {
	if _, err := bucket(tx, bucketName); err != nil {
		return nil, -1, err
	}
	vs, err := versionsOf(tx.Bucket(objectsKey(bucketName)).Get([]byte(key)))
	if err != nil || len(vs) == 0 {
		return nil, -1, err
	}
	if versionID == "" {
		if vs[len(vs)-1].Marker {
			return vs, -1, nil
		}
		return vs, len(vs) - 1, nil
	}
	for i, v := range vs {
		if v.public() == versionID {
			return vs, i, nil
		}
	}
	return vs, -1, nil
}

// object reads a version as gofakes3 serves it, with its body when asked.
func (s *fileStore) object(bucketName, key string, versionID gofakes3.VersionID, rng *gofakes3.ObjectRangeRequest, withBody bool) (*gofakes3.Object, error) {
	var obj *gofakes3.Object
	err := s.db.View(func(tx *bolt.Tx) error {
		vs, i, err := find(tx, bucketName, key, string(versionID))
		switch {
		case err != nil:
			return err
		case len(vs) == 0 || i < 0 && versionID == "":
			return gofakes3.KeyNotFound(key)
		case i < 0:
			return gofakes3.ErrNoSuchVersion
		}
		v := vs[i]
		obj = &gofakes3.Object{Name: key, Metadata: v.Meta, Size: v.Size, Hash: v.Hash, VersionID: gofakes3.VersionID(v.ID),
			IsDeleteMarker: v.Marker, Contents: io.NopCloser(bytes.NewReader(nil))}
		if versionID != "" {
			obj.VersionID = gofakes3.VersionID(v.public())
		}
		if v.Marker || !withBody {
			return nil
		}
		body := tx.Bucket(blobsKey(bucketName)).Get([]byte(v.Blob))
		if int64(len(body)) != v.Size {
			return fmt.Errorf("s3 store: %s: body of %d bytes, want %d", bucketName, len(body), v.Size)
		}
		r, err := rng.Range(v.Size)
		if err != nil {
			return err
		}
		if r != nil {
			body = body[r.Start : r.Start+r.Length]
		}
		obj.Range = r
		obj.Contents = io.NopCloser(bytes.NewReader(bytes.Clone(body))) // bolt's memory lives as long as the transaction
		return nil
	})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

func (s *fileStore) GetObject(bucketName, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return s.object(bucketName, key, "", rng, true)
}

func (s *fileStore) HeadObject(bucketName, key string) (*gofakes3.Object, error) {
	return s.object(bucketName, key, "", nil, false)
}

func (s *fileStore) GetObjectVersion(bucketName, key string, versionID gofakes3.VersionID, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return s.object(bucketName, key, versionID, rng, true)
}

func (s *fileStore) HeadObjectVersion(bucketName, key string, versionID gofakes3.VersionID) (*gofakes3.Object, error) {
	return s.object(bucketName, key, versionID, nil, false)
}

func (s *fileStore) PutObject(bucketName, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	var result gofakes3.PutObjectResult
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return result, err
	}
	if meta == nil {
		meta = map[string]string{}
	}
	if err := gofakes3.MergeMetadata(s, bucketName, key, meta); err != nil {
		return result, err
	}
	sum := md5.Sum(body)
	err = s.db.Update(func(tx *bolt.Tx) error {
		v, err := s.put(tx, bucketName, key, storedVersion{Time: s.now().UTC(), Size: int64(len(body)), Hash: sum[:], Meta: meta}, body, conditions)
		result.VersionID = gofakes3.VersionID(v.ID)
		return err
	})
	return result, err
}

// put adds a version with body as the object's latest: a new version on
// a versioned bucket, else in place of the null version.
func (s *fileStore) put(tx *bolt.Tx, bucketName, key string, v storedVersion, body []byte, conditions *gofakes3.PutConditions) (storedVersion, error) {
	info, err := bucket(tx, bucketName)
	if err != nil {
		return v, err
	}
	vs, err := versionsOf(tx.Bucket(objectsKey(bucketName)).Get([]byte(key)))
	if err != nil {
		return v, err
	}
	if conditions != nil {
		current := &gofakes3.ConditionalObjectInfo{}
		if n := len(vs); n > 0 && !vs[n-1].Marker {
			current.Exists, current.Hash = true, vs[n-1].Hash
		}
		if err := gofakes3.CheckPutConditions(conditions, current); err != nil {
			return v, err
		}
	}
	if info.Versioning == gofakes3.VersioningEnabled {
		v.ID = s.newID()
	} else if vs, err = dropNull(tx, bucketName, vs); err != nil {
		return v, err
	}
	v.Blob = s.newID()
	if err := tx.Bucket(blobsKey(bucketName)).Put([]byte(v.Blob), body); err != nil {
		return v, err
	}
	return v, saveVersions(tx, bucketName, key, append(vs, v))
}

func (s *fileStore) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(s, srcBucket, srcKey, dstBucket, dstKey, meta)
}

func (s *fileStore) DeleteObject(bucketName, key string) (gofakes3.ObjectDeleteResult, error) {
	var result gofakes3.ObjectDeleteResult
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		result, err = s.deleteObject(tx, bucketName, key)
		return err
	})
	return result, err
}

// deleteObject is DELETE without a version id: on a versioned bucket a
// delete marker becomes the latest version; on a suspended one the marker
// replaces the null version; else the object goes.
func (s *fileStore) deleteObject(tx *bolt.Tx, bucketName, key string) (gofakes3.ObjectDeleteResult, error) {
	var result gofakes3.ObjectDeleteResult
	info, err := bucket(tx, bucketName)
	if err != nil {
		return result, err
	}
	vs, err := versionsOf(tx.Bucket(objectsKey(bucketName)).Get([]byte(key)))
	if err != nil {
		return result, err
	}
	marker := storedVersion{Marker: true, Time: s.now().UTC()}
	switch info.Versioning {
	case gofakes3.VersioningEnabled:
		marker.ID = s.newID()
	case gofakes3.VersioningSuspended:
	default:
		vs, err = dropNull(tx, bucketName, vs)
		if err != nil {
			return result, err
		}
		return result, saveVersions(tx, bucketName, key, vs)
	}
	if vs, err = dropNull(tx, bucketName, vs); err != nil {
		return result, err
	}
	result.IsDeleteMarker, result.VersionID = true, gofakes3.VersionID(marker.public())
	return result, saveVersions(tx, bucketName, key, append(vs, marker))
}

func (s *fileStore) DeleteMulti(bucketName string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	ids := make([]gofakes3.ObjectID, len(keys))
	for i, k := range keys {
		ids[i] = gofakes3.ObjectID{Key: k}
	}
	return s.DeleteMultiVersions(bucketName, ids...)
}

func (s *fileStore) DeleteObjectVersion(bucketName, key string, versionID gofakes3.VersionID) (gofakes3.ObjectDeleteResult, error) {
	var result gofakes3.ObjectDeleteResult
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		result, err = s.deleteVersion(tx, bucketName, key, string(versionID))
		return err
	})
	return result, err
}

// deleteVersion removes one version or delete marker for good; the one
// before it, if any, becomes the latest. A missing one is no error.
func (s *fileStore) deleteVersion(tx *bolt.Tx, bucketName, key, versionID string) (gofakes3.ObjectDeleteResult, error) {
	var result gofakes3.ObjectDeleteResult
	vs, i, err := find(tx, bucketName, key, versionID)
	if err != nil || i < 0 {
		return result, err
	}
	result.VersionID, result.IsDeleteMarker = gofakes3.VersionID(versionID), vs[i].Marker
	if vs, err = dropVersion(tx, bucketName, vs, i); err != nil {
		return result, err
	}
	return result, saveVersions(tx, bucketName, key, vs)
}

func (s *fileStore) DeleteMultiVersions(bucketName string, ids ...gofakes3.ObjectID) (gofakes3.MultiDeleteResult, error) {
	var result gofakes3.MultiDeleteResult
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, err := bucket(tx, bucketName); err != nil {
			return err
		}
		for _, id := range ids {
			var err error
			if id.VersionID != "" {
				_, err = s.deleteVersion(tx, bucketName, id.Key, id.VersionID)
			} else {
				_, err = s.deleteObject(tx, bucketName, id.Key)
			}
			if err != nil {
				return err
			}
			result.Deleted = append(result.Deleted, id)
		}
		return nil
	})
	return result, err
}

func (s *fileStore) VersioningConfiguration(bucketName string) (gofakes3.VersioningConfiguration, error) {
	var out gofakes3.VersioningConfiguration
	err := s.db.View(func(tx *bolt.Tx) error {
		info, err := bucket(tx, bucketName)
		out.Status = info.Versioning
		return err
	})
	return out, err
}

func (s *fileStore) SetVersioningConfiguration(bucketName string, v gofakes3.VersioningConfiguration) error {
	if v.MFADelete.Enabled() {
		return gofakes3.ErrNotImplemented
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		info, err := bucket(tx, bucketName)
		if err != nil {
			return err
		}
		switch {
		case v.Status == gofakes3.VersioningEnabled:
			info.Versioning = gofakes3.VersioningEnabled
		case v.Status == gofakes3.VersioningSuspended && info.Versioning != gofakes3.VersioningNone:
			info.Versioning = gofakes3.VersioningSuspended
		}
		raw, _ := json.Marshal(info)
		return tx.Bucket(bucketsKey).Put([]byte(bucketName), raw)
	})
}

// ImportBoltFile copies the buckets and objects of a store written by
// earlier versions of the dev stack (gofakes3's BoltDB backend, which keeps
// no versions) into the store at into, keeping each object's time, then
// renames the old file to from + ".imported". It does nothing when from
// does not exist or into already does.
func ImportBoltFile(from, into string) (imported bool, err error) {
	if _, err := os.Stat(into); err == nil {
		return false, nil
	}
	if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	old, err := bolt.Open(from, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err != nil {
		return false, fmt.Errorf("s3 store %s: %w", from, err)
	}
	src := s3bolt.New(old)
	dst, err := openFileStore(into + ".importing")
	if err != nil {
		_ = old.Close()
		return false, err
	}
	err = copyStore(src, dst)
	err = errors.Join(err, dst.Close(), old.Close())
	if err == nil {
		err = os.Rename(into+".importing", into)
	}
	if err == nil {
		err = os.Rename(from, from+".imported")
	}
	if err != nil {
		_ = os.Remove(into + ".importing")
		return false, fmt.Errorf("import the S3 objects of %s: %w", from, err)
	}
	return true, nil
}

func copyStore(src gofakes3.Backend, dst *fileStore) error {
	buckets, err := src.ListBuckets()
	if err != nil {
		return err
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].Name < buckets[j].Name })
	for _, b := range buckets {
		if err := dst.CreateBucket(b.Name); err != nil {
			return err
		}
		list, err := src.ListBucket(b.Name, nil, gofakes3.ListBucketPage{})
		if err != nil {
			return err
		}
		for _, c := range list.Contents {
			obj, err := src.GetObject(b.Name, c.Key, nil)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(obj.Contents)
			_ = obj.Contents.Close()
			if err != nil {
				return err
			}
			sum := md5.Sum(body)
			v := storedVersion{Time: c.LastModified.UTC(), Size: int64(len(body)), Hash: sum[:], Meta: obj.Metadata}
			if err := dst.db.Update(func(tx *bolt.Tx) error {
				_, err := dst.put(tx, b.Name, c.Key, v, body, nil)
				return err
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
