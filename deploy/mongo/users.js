// Run once, by MongoDB's entrypoint, when the data volume is new (/docker-entrypoint-initdb.d): a user per service,
// with its password from .env, allowed to read and write Gossip's database and nothing else. Each service creates
// its indexes and seeds the catalogue at start, so each needs readWrite there; none is an administrator, and none
// can reach another database. The root user of the entrypoint serves this init and the replica set's initiation.
const gossip = db.getSiblingDB("gossip");
const services = {
  gossip_auth: "MONGO_INITDB_AUTH_PASSWORD",
  gossip_ingest: "MONGO_INITDB_INGEST_PASSWORD",
  gossip_stream: "MONGO_INITDB_STREAM_PASSWORD",
};
for (const [user, variable] of Object.entries(services)) {
  const pwd = process.env[variable];
  if (!pwd) throw new Error(`${variable} is not set`);
  gossip.createUser({ user: user, pwd: pwd, roles: [{ role: "readWrite", db: "gossip" }] });
}
