package apiserver

import (
	"net/http"

	"github.com/jitssh/jitssh/api"
)

func (s *Server) handleKeyDuplicates(w http.ResponseWriter, r *http.Request) error {
	out := api.KeyDuplicatesResponse{Duplicates: []api.KeyDuplicate{}}
	for _, d := range s.admin.DuplicateKeys() {
		out.Duplicates = append(out.Duplicates, api.KeyDuplicate{Fingerprint: d.Fingerprint, Users: d.Users})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRemoveKey(w http.ResponseWriter, r *http.Request) error {
	var body api.RemoveKeyBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.admin.RemoveKey(r.Context(), callerOf(r), r.PathValue("name"), body.Fingerprint); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
