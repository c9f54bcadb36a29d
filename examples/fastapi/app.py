"""A users service whose cache the database keeps correct (cache_ext example).

Reads are cache-aside; writes only touch PostgreSQL.  The triggers made by
    SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}')
invalidate exactly the keys a write makes stale, whoever writes (this app,
psql, a batch job), so no handler here ever deletes a cache key.

CACHE_MODE picks how reads are cached:
  redis  the app's own Redis client (redis-py asyncio); the database must use
         cache_ext.backend = 'redis' pointed at the same Redis.
  sql    no Redis client at all: cache_fetch() in SQL, on whatever store the
         database is set to (the shared-memory one by default).
  none   no cache: every read queries the table (the baseline).
"""
import json
import logging
import os

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Text, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import declarative_base, sessionmaker

CACHE_MODE = os.environ.get("CACHE_MODE", "redis")
DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/users_demo")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

ALL_KEY, ALL_TTL = "users:all", 600          # the list
ONE_KEY, ONE_TTL = "users:by_id:{}", 900     # one user, by id (matches the trigger's template)

if CACHE_MODE not in ("redis", "sql", "none"):
    raise SystemExit(f"CACHE_MODE must be redis, sql or none, not {CACHE_MODE!r}")

log = logging.getLogger("users")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
if not log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)

engine = create_async_engine(DATABASE_URL, pool_size=10, max_overflow=10)
Session = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
Base = declarative_base()

if CACHE_MODE == "redis":
    import redis.asyncio as aioredis
    rds = aioredis.from_url(REDIS_URL, decode_responses=True)


class User(Base):
    __tablename__ = "users"
    user_id = Column(BigInteger, primary_key=True)
    name = Column(Text, nullable=False)
    email = Column(Text, nullable=False)

    def to_dict(self):
        return {"id": self.user_id, "name": self.name, "email": self.email}


class UserIn(BaseModel):
    name: str
    email: str


app = FastAPI(title=f"users (cache: {CACHE_MODE})")


def json_response(body: str, cache: str) -> Response:
    """Cached values are JSON text already: send them as they are."""
    return Response(body, media_type="application/json", headers={"X-Cache": cache})


# --- reads -------------------------------------------------------------------

async def load_all():
    async with Session() as s:
        users = (await s.execute(select(User).order_by(User.user_id))).scalars()
        return [u.to_dict() for u in users]


async def load_one(user_id: int):
    async with Session() as s:
        user = await s.get(User, user_id)
        return user.to_dict() if user else None


async def cache_aside(key: str, ttl: int, load):
    """(JSON text, "hit"/"miss"/"off"/"error"): Redis first, else load() and store it.

    A missing user is cached too (as null): the INSERT trigger clears the key.
    If Redis fails, serve from the database: the cache is an optimisation.
    """
    if CACHE_MODE == "none":
        return json.dumps(await load()), "off"
    try:
        value = await rds.get(key)
        if value is not None:
            log.info("cache hit %s", key)
            return value, "hit"
    except aioredis.RedisError as e:
        log.warning("cache unavailable (%s), reading %s from the database", e, key)
        return json.dumps(await load()), "error"
    log.info("cache miss %s", key)
    value = json.dumps(await load())
    try:
        await rds.set(key, value, ex=ttl)
    except aioredis.RedisError as e:
        log.warning("cache set %s failed: %s", key, e)
    return value, "miss"


# CACHE_MODE=sql: one round trip to PostgreSQL; cache_fetch() answers from
# the cache, or runs the query, stores its rows as a JSON array and returns it.
FETCH_ALL = text("""
    SELECT cache_fetch('users:all',
                       'SELECT user_id AS id, name, email FROM users ORDER BY user_id',
                       600)::text""")
# the id is bound as $1 by cache_fetch, never spliced into the query text
FETCH_ONE = text("""
    SELECT (cache_fetch(:key,
                        'SELECT user_id AS id, name, email FROM users WHERE user_id = $1',
                        900, CAST(:id AS bigint)) -> 0)::text""")


async def sql_fetch(stmt, **params):
    async with Session() as s:
        return (await s.execute(stmt, params)).scalar()


@app.get("/users")
async def list_users():
    if CACHE_MODE == "sql":
        return json_response(await sql_fetch(FETCH_ALL), "sql")
    return json_response(*await cache_aside(ALL_KEY, ALL_TTL, load_all))


@app.get("/users/{user_id}")
async def get_user(user_id: int):
    key = ONE_KEY.format(user_id)
    if CACHE_MODE == "sql":
        body, cache = await sql_fetch(FETCH_ONE, key=key, id=user_id), "sql"
    else:
        body, cache = await cache_aside(key, ONE_TTL, lambda: load_one(user_id))
    if body is None or body == "null":
        raise HTTPException(404, "user not found", headers={"X-Cache": cache})
    return json_response(body, cache)


# --- writes: PostgreSQL only; the triggers invalidate the cache -------------

@app.post("/users", status_code=201)
async def create_user(data: UserIn):
    async with Session.begin() as s:
        user = User(name=data.name, email=data.email)
        s.add(user)
    return user.to_dict()


@app.put("/users/{user_id}")
async def update_user(user_id: int, data: UserIn):
    async with Session.begin() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise HTTPException(404, "user not found")
        user.name, user.email = data.name, data.email
    return user.to_dict()


@app.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int):
    async with Session.begin() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise HTTPException(404, "user not found")
        await s.delete(user)
    return Response(status_code=204)
