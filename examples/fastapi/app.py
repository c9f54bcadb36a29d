"""A users service whose cache the database keeps correct (cache_ext example).

Reads are cache-aside; writes only touch PostgreSQL.  The triggers made by
    SELECT cache_attach('users', 'users:all', 'users:by_id:{user_id}')
invalidate exactly the keys a write makes stale, whoever writes (this app,
psql, a batch job), so no handler here ever deletes a cache key.

Run it with uvicorn (examples/fastapi/run.sh does, with throwaway servers):

    DATABASE_URL=postgresql://app@db.internal/users REDIS_URL=redis://cache.internal:6379/0 \\
        python3 -m uvicorn app:app

Settings, all from the environment (see Settings below for the defaults):
  DATABASE_URL           postgresql://user[:password]@host[:port]/db  (or postgresql+asyncpg://...)
  REDIS_URL              redis://[[user]:password@]host[:port][/db]
  REDIS_TTL              seconds a cached user lives (users:by_id:{id})
  REDIS_LIST_TTL         seconds the cached list lives (users:all)
  REDIS_SOCKET_TIMEOUT, REDIS_CONNECT_TIMEOUT    seconds; a Redis that stops
                         answering costs a request at most about this long
  REDIS_RETRY_AFTER      seconds to leave Redis alone after it failed
  DB_CONNECT_TIMEOUT, DB_COMMAND_TIMEOUT         seconds, for PostgreSQL
  CACHE_MODE             redis (default): the app's own Redis client, with the
                         database on cache_ext.backend = 'redis', same Redis;
                         sql: no Redis client, cache_fetch() in SQL on the
                         database's store (shared memory by default);
                         none: no cache (the baseline of load.py)
  LOG_LEVEL              DEBUG shows every cache hit and miss
"""
import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, List, Optional, Tuple

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Text, exc, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import declarative_base, sessionmaker

log = logging.getLogger("users")

ALL_KEY = "users:all"            # the list
ONE_KEY = "users:by_id:{}"       # one user (the trigger's template users:by_id:{user_id})


# --- settings -----------------------------------------------------------------

def _env_number(name: str, default: float, kind=float, minimum: float = 0):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise SystemExit(f"{name} must be a {'whole ' if kind is int else ''}number of seconds"
                         f" of at least {minimum}, not {raw!r}")
    return value


def _asyncpg_url(url: str) -> str:
    """Accept the usual postgresql:// URL and tell SQLAlchemy to use asyncpg."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme):]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/users_demo"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_ttl: int = 900
    redis_list_ttl: int = 600
    redis_socket_timeout: float = 0.5
    redis_connect_timeout: float = 0.5
    redis_retry_after: float = 1.0
    db_connect_timeout: float = 5.0
    db_command_timeout: float = 10.0
    cache_mode: str = "redis"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls) -> "Settings":
        d = cls()
        mode = os.environ.get("CACHE_MODE", d.cache_mode)
        if mode not in ("redis", "sql", "none"):
            raise SystemExit(f"CACHE_MODE must be redis, sql or none, not {mode!r}")
        return cls(
            database_url=_asyncpg_url(os.environ.get("DATABASE_URL", d.database_url)),
            redis_url=os.environ.get("REDIS_URL", d.redis_url),
            redis_ttl=_env_number("REDIS_TTL", d.redis_ttl, int, 1),
            redis_list_ttl=_env_number("REDIS_LIST_TTL", d.redis_list_ttl, int, 1),
            redis_socket_timeout=_env_number("REDIS_SOCKET_TIMEOUT", d.redis_socket_timeout, minimum=0.01),
            redis_connect_timeout=_env_number("REDIS_CONNECT_TIMEOUT", d.redis_connect_timeout, minimum=0.01),
            redis_retry_after=_env_number("REDIS_RETRY_AFTER", d.redis_retry_after),
            db_connect_timeout=_env_number("DB_CONNECT_TIMEOUT", d.db_connect_timeout, minimum=0.01),
            db_command_timeout=_env_number("DB_COMMAND_TIMEOUT", d.db_command_timeout, minimum=0.01),
            cache_mode=mode,
            log_level=os.environ.get("LOG_LEVEL", d.log_level).upper(),
        )


# --- the table and the API's shapes --------------------------------------------

Base = declarative_base()


class User(Base):
    __tablename__ = "users"
    user_id = Column(BigInteger, primary_key=True)
    name = Column(Text, nullable=False)
    email = Column(Text, nullable=False)


class UserIn(BaseModel):
    name: str
    email: str


class UserOut(BaseModel):
    id: int
    name: str
    email: str

    @classmethod
    def of(cls, user: User) -> "UserOut":
        return cls(id=user.user_id, name=user.name, email=user.email)


def user_json(user: Optional[User]):
    """A user as UserOut's JSON object (None: null), for the cache.

    Plain dicts rather than UserOut(...).dict(): the rows come from a typed
    table, and validating each one would double the cost of a miss on the
    1000-user list (jsonable_encoder: five times).
    """
    return None if user is None else {"id": user.user_id, "name": user.name, "email": user.email}


class Health(BaseModel):
    status: str                  # "ok", "degraded" (serving without the cache) or "unavailable"
    database: str                # "ok" or "unavailable"
    redis: str                   # "ok", "unavailable" or "not used"
    cache_mode: str


# --- the app's Redis client -------------------------------------------------------

class CacheUnavailable(Exception):
    pass


class RedisCache:
    """redis-py's asyncio client with timeouts on every socket, and a pause after a failure.

    The timeouts are redis-py's own socket timeouts, not asyncio.wait_for():
    cancelling a command in flight can leave its reply on the connection for
    the next command in redis-py before 4.5.4 (CVE-2023-28858).  After a
    failure the next requests skip Redis for retry_after seconds, so a Redis
    that hangs costs one request a timeout, not every request.
    """

    def __init__(self, settings: Settings):
        self.client = aioredis.from_url(
            settings.redis_url, decode_responses=True,
            socket_timeout=settings.redis_socket_timeout,
            socket_connect_timeout=settings.redis_connect_timeout)
        self.retry_after = settings.redis_retry_after
        self.paused_until = 0.0

    async def _call(self, what: str, command: Callable[[], Awaitable]):
        if time.monotonic() < self.paused_until:
            raise CacheUnavailable("Redis failed less than REDIS_RETRY_AFTER seconds ago")
        try:
            return await command()
        except (aioredis.RedisError, OSError) as e:
            # one warning per pause, not one per request
            self.paused_until = time.monotonic() + self.retry_after
            log.warning("Redis %s failed (%s: %s); serving from PostgreSQL for %gs",
                        what, type(e).__name__, e, self.retry_after)
            raise CacheUnavailable(str(e)) from e

    async def get(self, key: str) -> Optional[str]:
        return await self._call(f"GET {key}", lambda: self.client.get(key))

    async def set(self, key: str, value: str, ttl: int) -> None:
        await self._call(f"SET {key}", lambda: self.client.set(key, value, ex=ttl))

    async def ping(self) -> bool:
        """For /health: asks Redis even during a pause."""
        try:
            return bool(await self.client.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.close()
        await self.client.connection_pool.disconnect()


# --- lifespan and dependencies ------------------------------------------------------

@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One engine (connection pool) and one Redis client per process."""
    settings: Settings = app.state.settings
    engine = create_async_engine(
        settings.database_url, pool_size=10, max_overflow=10,
        pool_timeout=settings.db_connect_timeout,
        # asyncpg: timeout bounds connecting, command_timeout every statement
        connect_args={"timeout": settings.db_connect_timeout,
                      "command_timeout": settings.db_command_timeout})
    app.state.engine = engine
    app.state.sessions = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    app.state.cache = RedisCache(settings) if settings.cache_mode == "redis" else None
    log.info("users service: CACHE_MODE=%s", settings.cache_mode)
    try:
        yield
    finally:
        if app.state.cache is not None:
            await app.state.cache.close()
        await engine.dispose()


# async def, even with nothing to await: FastAPI runs a plain def dependency
# in its thread pool, a thread hop on every request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_cache(request: Request) -> Optional[RedisCache]:
    return request.app.state.cache


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # a session takes a connection from the pool only when it runs a query,
    # so a request served from Redis never touches PostgreSQL
    async with request.app.state.sessions() as session:
        yield session


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    settings = settings or Settings.from_env()
    log.setLevel(settings.log_level)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    app = FastAPI(title=f"users (cache: {settings.cache_mode})")
    app.state.settings = settings
    # FastAPI 0.93 and later take FastAPI(lifespan=lifespan); Debian 12's 0.92
    # does not, but its Starlette router runs the same context manager.
    app.router.lifespan_context = lifespan
    app.include_router(router)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)
    return app


# PostgreSQL down, hung past DB_CONNECT_TIMEOUT / DB_COMMAND_TIMEOUT, or the
# pool exhausted: asyncpg raises OSError or asyncio.TimeoutError (an OSError
# only from Python 3.11 on), SQLAlchemy its own errors.  Constraint
# violations and the like stay 500s: they are bugs, not outages.
DATABASE_UNAVAILABLE = (OSError, asyncio.TimeoutError, exc.OperationalError,
                        exc.InterfaceError, exc.TimeoutError)


async def database_unavailable(request: Request, e: Exception) -> JSONResponse:
    log.warning("PostgreSQL unavailable for %s %s (%s: %s)",
                request.method, request.url.path, type(e).__name__, e)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


# --- reads -----------------------------------------------------------------------

def json_response(body: str, cache: str) -> Response:
    """Cached values are JSON text already: send them as they are."""
    return Response(body, media_type="application/json", headers={"X-Cache": cache})


async def cache_aside(cache: Optional[RedisCache], key: str, ttl: int,
                      load: Callable[[], Awaitable]) -> Tuple[str, str]:
    """(JSON text, X-Cache): Redis first, else load() from PostgreSQL and store it.

    load() returns what json.dumps() takes; the JSON is UserOut's (or a list
    of them), as the routes' response_model says.

    X-Cache is hit, miss, off (no cache) or error (Redis failed: served from
    PostgreSQL).  A missing user is cached too (as null): the INSERT trigger
    clears the key.
    """
    if cache is None:
        return json.dumps(await load()), "off"
    try:
        value = await cache.get(key)
    except CacheUnavailable:
        return json.dumps(await load()), "error"
    if value is not None:
        log.debug("cache hit %s", key)
        return value, "hit"
    log.debug("cache miss %s", key)
    value = json.dumps(await load())
    try:
        await cache.set(key, value, ttl)
    except CacheUnavailable:
        pass  # served all the same; the next read tries again
    return value, "miss"


# CACHE_MODE=sql: one round trip to PostgreSQL; cache_fetch() answers from
# the cache, or runs the query, stores its rows as a JSON array and returns it.
FETCH_ALL = text("""
    SELECT cache_fetch('users:all',
                       'SELECT user_id AS id, name, email FROM users ORDER BY user_id',
                       CAST(:ttl AS integer))::text""")
# the id is bound as $1 by cache_fetch, never spliced into the query text
FETCH_ONE = text("""
    SELECT (cache_fetch(:key,
                        'SELECT user_id AS id, name, email FROM users WHERE user_id = $1',
                        CAST(:ttl AS integer), CAST(:id AS bigint)) -> 0)::text""")

NOT_FOUND = {404: {"description": "no such user"}}

router = APIRouter()


@router.get("/users", response_model=List[UserOut])
async def list_users(settings: Settings = Depends(get_settings),
                     cache: Optional[RedisCache] = Depends(get_cache),
                     session: AsyncSession = Depends(get_session)):
    if settings.cache_mode == "sql":
        body = (await session.execute(FETCH_ALL, {"ttl": settings.redis_list_ttl})).scalar()
        return json_response(body, "sql")

    async def load() -> list:
        users = (await session.execute(select(User).order_by(User.user_id))).scalars()
        return [user_json(u) for u in users]

    return json_response(*await cache_aside(cache, ALL_KEY, settings.redis_list_ttl, load))


@router.get("/users/{user_id}", response_model=UserOut, responses=NOT_FOUND)
async def get_user(user_id: int,
                   settings: Settings = Depends(get_settings),
                   cache: Optional[RedisCache] = Depends(get_cache),
                   session: AsyncSession = Depends(get_session)):
    key = ONE_KEY.format(user_id)
    if settings.cache_mode == "sql":
        params = {"key": key, "ttl": settings.redis_ttl, "id": user_id}
        body, how = (await session.execute(FETCH_ONE, params)).scalar(), "sql"
    else:
        async def load() -> Optional[dict]:
            return user_json(await session.get(User, user_id))

        body, how = await cache_aside(cache, key, settings.redis_ttl, load)
    if body is None or body == "null":
        raise HTTPException(404, "user not found", headers={"X-Cache": how})
    return json_response(body, how)


# --- writes: PostgreSQL only; the triggers invalidate the cache ------------------

@router.post("/users", status_code=201, response_model=UserOut)
async def create_user(data: UserIn, session: AsyncSession = Depends(get_session)):
    async with session.begin():
        user = User(name=data.name, email=data.email)
        session.add(user)
    return UserOut.of(user)


@router.put("/users/{user_id}", response_model=UserOut, responses=NOT_FOUND)
async def update_user(user_id: int, data: UserIn, session: AsyncSession = Depends(get_session)):
    async with session.begin():
        user = await session.get(User, user_id)
        if user is None:
            raise HTTPException(404, "user not found")
        user.name, user.email = data.name, data.email
    return UserOut.of(user)


@router.delete("/users/{user_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
async def delete_user(user_id: int, session: AsyncSession = Depends(get_session)):
    async with session.begin():
        user = await session.get(User, user_id)
        if user is None:
            raise HTTPException(404, "user not found")
        await session.delete(user)
    return Response(status_code=204)


# --- health ------------------------------------------------------------------------

@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(response: Response,
                 settings: Settings = Depends(get_settings),
                 cache: Optional[RedisCache] = Depends(get_cache),
                 session: AsyncSession = Depends(get_session)):
    """200 while the service can answer (from PostgreSQL if Redis is down), 503 without PostgreSQL."""
    try:
        await session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as e:  # any failure means: do not send traffic here
        log.warning("health: PostgreSQL unavailable (%s: %s)", type(e).__name__, e)
        database = "unavailable"
    redis_state = "not used" if cache is None else ("ok" if await cache.ping() else "unavailable")
    if database != "ok":
        status, response.status_code = "unavailable", 503
    else:
        status = "degraded" if redis_state == "unavailable" else "ok"
    return Health(status=status, database=database, redis=redis_state, cache_mode=settings.cache_mode)


app = create_app()
