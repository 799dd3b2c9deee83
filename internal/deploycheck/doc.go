// Package deploycheck holds no code, only tests: they parse the production
// stack at the repository root (docker-compose.yml and the Dockerfile, which
// no test here can run) and check it against the code, so that the files
// cannot drift from the settings in internal/config, the search attributes
// in workflows, or the files in the repository they mount.
package deploycheck
