package web

import (
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/txfs/txfs"
)

// Limits of what the file browser sends.
const (
	maxEntries = 5000     // entries of one directory
	previewMax = 64 << 10 // bytes of a file shown in the page
)

// Entry is one name in a directory listing.
type Entry struct {
	Name  string    `json:"name"`
	Kind  string    `json:"kind"` // "dir", "file", "symlink" or "other"
	Size  int64     `json:"size"`
	Mode  string    `json:"mode"`
	MTime time.Time `json:"mtime"`
}

// Listing is the answer of /api/files: a directory's entries, or a
// file's head.
type Listing struct {
	Path      string  `json:"path"` // "/" for the top of the tree
	Kind      string  `json:"kind"` // "dir" or "file"
	Entries   []Entry `json:"entries,omitempty"`
	Truncated bool    `json:"truncated,omitempty"` // more entries, or more of the file, than sent
	File      *Entry  `json:"file,omitempty"`
	Preview   *string `json:"preview,omitempty"` // the file's head, if it is text
}

// openTree opens the tree a request names, live or a snapshot's, and the
// path in it ("." for its top). os.Root keeps every name, symlinks too,
// inside the tree.
func (s *Server) openTree(r *http.Request) (*os.Root, string, *apiError) {
	dir, e := s.volume(r)
	if e != nil {
		return nil, "", e
	}
	q := r.URL.Query()
	top := dir
	if snap := q.Get("snap"); snap != "" {
		if err := txfs.CheckSnapshotName(snap); err != nil {
			return nil, "", &apiError{http.StatusBadRequest, err.Error()}
		}
		top = filepath.Join(dir, ".snapshots", snap)
	}
	rel := strings.TrimPrefix(path.Clean("/"+q.Get("path")), "/")
	if rel == "" {
		rel = "."
	}
	root, err := os.OpenRoot(top)
	if err != nil {
		return nil, "", fileError(err, "")
	}
	return root, rel, nil
}

// open opens the file or directory a request names, and stats it.
func (s *Server) open(r *http.Request) (*os.File, fs.FileInfo, string, *apiError) {
	root, rel, e := s.openTree(r)
	if e != nil {
		return nil, nil, "", e
	}
	defer root.Close() // an open file outlives its Root
	f, err := root.Open(rel)
	if err != nil {
		return nil, nil, "", fileError(err, rel)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, "", fileError(err, rel)
	}
	return f, fi, rel, nil
}

// fileError says in words what went wrong with name.
func fileError(err error, name string) *apiError {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	msg := err.Error()
	if name != "" {
		msg = "/" + name + ": " + msg
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &apiError{http.StatusNotFound, msg}
	case errors.Is(err, fs.ErrPermission):
		return &apiError{http.StatusForbidden, msg}
	}
	return &apiError{http.StatusInternalServerError, msg}
}

func (s *Server) files(w http.ResponseWriter, r *http.Request) {
	f, fi, rel, e := s.open(r)
	if e != nil {
		e.write(w)
		return
	}
	defer f.Close()
	out := Listing{Path: "/", Kind: "file"}
	if rel != "." {
		out.Path = "/" + rel
	}
	if fi.IsDir() {
		out.Kind = "dir"
		var err error
		out.Entries, out.Truncated, err = readDir(f, rel == "." && r.URL.Query().Get("snap") == "")
		if err != nil {
			fileError(err, rel).write(w)
			return
		}
	} else {
		e := entryOf(fi)
		out.File = &e
		head := make([]byte, previewMax)
		n, err := io.ReadFull(f, head)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			fileError(err, rel).write(w)
			return
		}
		out.Truncated = fi.Size() > int64(n)
		// A multi-byte character cut at the end is still text.
		text := head[:n]
		for i := 0; i < utf8.UTFMax && len(text) > 0 && !utf8.Valid(text); i++ {
			text = text[:len(text)-1]
		}
		if utf8.Valid(text) && !strings.ContainsRune(string(text), 0) {
			p := string(text)
			out.Preview = &p
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// readDir lists f, directories first, then by name. The top of the live
// tree hides .snapshots: each snapshot is a tree of its own in the page.
func readDir(f *os.File, top bool) ([]Entry, bool, error) {
	des, err := f.ReadDir(maxEntries + 1)
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	truncated := len(des) > maxEntries
	if truncated {
		des = des[:maxEntries]
	}
	out := []Entry{}
	for _, de := range des {
		if top && de.Name() == ".snapshots" {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // gone since it was listed
		}
		out = append(out, entryOf(fi))
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Kind == "dir") != (out[j].Kind == "dir") {
			return out[i].Kind == "dir"
		}
		return out[i].Name < out[j].Name
	})
	return out, truncated, nil
}

func entryOf(fi fs.FileInfo) Entry {
	kind := "other"
	switch {
	case fi.IsDir():
		kind = "dir"
	case fi.Mode().IsRegular():
		kind = "file"
	case fi.Mode()&fs.ModeSymlink != 0:
		kind = "symlink"
	}
	return Entry{Name: fi.Name(), Kind: kind, Size: fi.Size(), Mode: fi.Mode().String(), MTime: fi.ModTime()}
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	f, fi, rel, e := s.open(r)
	if e != nil {
		e.write(w)
		return
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		writeError(w, http.StatusBadRequest, "/"+rel+" is not a regular file")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name()}))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
