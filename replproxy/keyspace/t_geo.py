"""Geo writes from the master's stream: the searches that STORE, recomputed as the master did.

GEOADD arrives already rewritten to `zadd k [CH] [NX|XX] <52-bit geohash> member ...` (see
`t_zset`); GEOSEARCHSTORE and GEORADIUS / GEORADIUSBYMEMBER with STORE or STOREDIST arrive
verbatim, and a replica must recompute them. The stored result (which members, and with
STOREDIST their distances) depends on every floating-point step of the master's search, so
this module is a line-by-line port of Redis's `geohash.c`, `geohash_helper.c`, `geo.c` and
`pqsort.c`, in the variant of the master's version:

- 5.0: `geohashGetAreasByRadius` (bounding box from the centre latitude, step decreased by
  comparing haversine distances), no clamping of decoded cells, results sorted with glibc's
  stable merge-sort `qsort` when COUNT is given.
- 6.0: as 5.0, but decoded coordinates are clamped to the valid range.
- 6.2: GeoShape (BYRADIUS / BYBOX, `geohashCalculateAreasByShapeWGS84`), COUNT ... ANY, the
  partial `pqsort` when COUNT cuts the result.
- 7.0+ and Valkey: the haversine shortcut for equal longitudes (`geohashGetLatDistance`) and
  the cheaper BYBOX test.

The variant is read from the `redis-ver` / `valkey-ver` field of the master's last snapshot
(`Keyspace.loaded_aux`); without one the newest is used. Python floats are C doubles and
`math.sin`/`cos`/`asin`/`sqrt` are the C library's, so evaluating each expression in C's
order gives the master's bits. Nothing here checks expiry or answers clients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.pqsort import pqsort
from replproxy.keyspace.t_zset import (
    double_arg,
    master_version,
    store_zset,
    zadd,
    zset_for_write,
)
from replproxy.keyspace.util import parse_int
from replproxy.keyspace.values import ZSet

# ---- geohash.c / geohash_helper.c ----

GEO_STEP_MAX = 26
GEO_LAT_MIN = -85.05112878
GEO_LAT_MAX = 85.05112878
GEO_LONG_MIN = -180.0
GEO_LONG_MAX = 180.0
_LAT_SCALE = GEO_LAT_MAX - GEO_LAT_MIN
_LONG_SCALE = GEO_LONG_MAX - GEO_LONG_MIN

D_R = math.pi / 180.0
EARTH_RADIUS_IN_METERS = 6372797.560856
MERCATOR_MAX = 20037726.37

_M64 = (1 << 64) - 1
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA

# Algorithm variants, by the first master version that has them.
V50, V60, V62, V70 = 50, 60, 62, 70


def geo_variant(ks: Keyspace) -> int:
    """Which geo code the master runs, from its snapshot's version field."""
    valkey, major, minor = master_version(ks)
    if valkey or (major, minor) >= (7, 0):
        return V70
    if (major, minor) >= (6, 2):
        return V62
    if major >= 6:
        return V60
    return V50


def _interleave64(xlo: int, ylo: int) -> int:
    x, y = xlo, ylo
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF
    y = (y | (y << 16)) & 0x0000FFFF0000FFFF
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF
    y = (y | (y << 8)) & 0x00FF00FF00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
    y = (y | (y << 4)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & 0x3333333333333333
    y = (y | (y << 2)) & 0x3333333333333333
    x = (x | (x << 1)) & _EVEN
    y = (y | (y << 1)) & _EVEN
    return (x | (y << 1)) & _M64


def _deinterleave64(interleaved: int) -> int:
    x = interleaved
    y = interleaved >> 1
    x = x & _EVEN
    y = y & _EVEN
    x = (x | (x >> 1)) & 0x3333333333333333
    y = (y | (y >> 1)) & 0x3333333333333333
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
    y = (y | (y >> 2)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
    y = (y | (y >> 4)) & 0x00FF00FF00FF00FF
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
    y = (y | (y >> 8)) & 0x0000FFFF0000FFFF
    x = (x | (x >> 16)) & 0x00000000FFFFFFFF
    y = (y | (y >> 16)) & 0x00000000FFFFFFFF
    return x | (y << 32)


def geohash_encode(longitude: float, latitude: float, step: int) -> int | None:
    """`geohashEncode` over the WGS84 ranges: the interleaved bits, None out of range."""
    if (longitude > GEO_LONG_MAX or longitude < GEO_LONG_MIN
            or latitude > GEO_LAT_MAX or latitude < GEO_LAT_MIN):
        return None
    lat_offset = (latitude - GEO_LAT_MIN) / _LAT_SCALE
    long_offset = (longitude - GEO_LONG_MIN) / _LONG_SCALE
    scale = float(1 << step)
    lat_offset *= scale
    long_offset *= scale
    # The doubles are converted to uint32_t (truncation) on the call.
    return _interleave64(int(lat_offset), int(long_offset))


def geohash_align52(bits: int, step: int) -> int:
    return (bits << (52 - step * 2)) & _M64


def geohash_decode(bits: int, step: int) -> tuple[float, float, float, float]:
    """`geohashDecode`: (lon_min, lon_max, lat_min, lat_max) of a cell."""
    hash_sep = _deinterleave64(bits)
    ilato = hash_sep & 0xFFFFFFFF
    ilono = (hash_sep >> 32) & 0xFFFFFFFF
    div = float(1 << step)
    lat_min = GEO_LAT_MIN + (ilato * 1.0 / div) * _LAT_SCALE
    lat_max = GEO_LAT_MIN + (((ilato + 1) & 0xFFFFFFFF) * 1.0 / div) * _LAT_SCALE
    lon_min = GEO_LONG_MIN + (ilono * 1.0 / div) * _LONG_SCALE
    lon_max = GEO_LONG_MIN + (((ilono + 1) & 0xFFFFFFFF) * 1.0 / div) * _LONG_SCALE
    return lon_min, lon_max, lat_min, lat_max


def decode_score(score: float, clamp: bool) -> tuple[float, float]:
    """`decodeGeohash`: the centre of a member's 52-bit cell, (longitude, latitude)."""
    lon_min, lon_max, lat_min, lat_max = geohash_decode(int(score) & _M64, GEO_STEP_MAX)
    lon = (lon_min + lon_max) / 2
    lat = (lat_min + lat_max) / 2
    if clamp:  # 6.0+ (geohashDecodeAreaToLongLat)
        lon = min(max(lon, GEO_LONG_MIN), GEO_LONG_MAX)
        lat = min(max(lat, GEO_LAT_MIN), GEO_LAT_MAX)
    return lon, lat


def _move_x(bits: int, step: int, d: int) -> int:
    x = bits & _ODD
    y = bits & _EVEN
    zz = _EVEN >> (64 - step * 2)
    if d > 0:
        x = x + (zz + 1)
    else:
        x = x | zz
        x = x - (zz + 1)
    x &= _ODD >> (64 - step * 2)
    return (x | y) & _M64


def _move_y(bits: int, step: int, d: int) -> int:
    x = bits & _ODD
    y = bits & _EVEN
    zz = _ODD >> (64 - step * 2)
    if d > 0:
        y = y + (zz + 1)
    else:
        y = y | zz
        y = y - (zz + 1)
    y &= _EVEN >> (64 - step * 2)
    return (x | y) & _M64


def geohash_neighbors(bits: int, step: int) -> dict[str, int]:
    """`geohashNeighbors`."""
    return {
        "east": _move_x(bits, step, 1),
        "west": _move_x(bits, step, -1),
        "south": _move_y(bits, step, -1),
        "north": _move_y(bits, step, 1),
        "north_west": _move_y(_move_x(bits, step, -1), step, 1),
        "north_east": _move_y(_move_x(bits, step, 1), step, 1),
        "south_east": _move_y(_move_x(bits, step, 1), step, -1),
        "south_west": _move_y(_move_x(bits, step, -1), step, -1),
    }


def estimate_steps_by_radius(range_meters: float, lat: float) -> int:
    """`geohashEstimateStepsByRadius`."""
    if range_meters == 0:
        return 26
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), 26)


def _deg_rad(ang: float) -> float:
    return ang * D_R


def _rad_deg(ang: float) -> float:
    return ang / D_R


def distance_v50(lon1d: float, lat1d: float, lon2d: float, lat2d: float) -> float:
    """`geohashGetDistance` up to 6.2."""
    lat1r = _deg_rad(lat1d)
    lon1r = _deg_rad(lon1d)
    lat2r = _deg_rad(lat2d)
    lon2r = _deg_rad(lon2d)
    u = math.sin((lat2r - lat1r) / 2)
    v = math.sin((lon2r - lon1r) / 2)
    return 2.0 * EARTH_RADIUS_IN_METERS * math.asin(
        math.sqrt(u * u + math.cos(lat1r) * math.cos(lat2r) * v * v))


def lat_distance(lat1d: float, lat2d: float) -> float:
    """`geohashGetLatDistance` (7.0+)."""
    return EARTH_RADIUS_IN_METERS * abs(_deg_rad(lat2d) - _deg_rad(lat1d))


def distance_v70(lon1d: float, lat1d: float, lon2d: float, lat2d: float) -> float:
    """`geohashGetDistance` from 7.0: equal longitudes take the latitude-only shortcut."""
    lon1r = _deg_rad(lon1d)
    lon2r = _deg_rad(lon2d)
    v = math.sin((lon2r - lon1r) / 2)
    if v == 0.0:
        return lat_distance(lat1d, lat2d)
    lat1r = _deg_rad(lat1d)
    lat2r = _deg_rad(lat2d)
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS_IN_METERS * math.asin(math.sqrt(a))


# ---- the search ----

CIRCULAR, RECTANGLE = 1, 2


@dataclass
class GeoShape:
    type: int = 0
    lon: float = 0.0
    lat: float = 0.0
    conversion: float = 1.0
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0


# A search box: (bits, step); None is a GZERO'd neighbour.
Box = tuple[int, int] | None


def _areas(shape: GeoShape, variant: int) -> list[Box]:
    """`geohashCalculateAreasByShapeWGS84` (6.2+) / `geohashGetAreasByRadius` (5.0, 6.0):
    the centre cell and its 8 neighbours, in `membersOfAllNeighbors` order."""
    longitude, latitude = shape.lon, shape.lat
    distance = distance_v70 if variant >= V70 else distance_v50
    if variant >= V62:
        circular = shape.type == CIRCULAR
        height = shape.conversion * (shape.radius if circular else shape.height / 2)
        width = shape.conversion * (shape.radius if circular else shape.width / 2)
        lat_delta = _rad_deg(height / EARTH_RADIUS_IN_METERS)
        long_delta_top = _rad_deg(
            width / EARTH_RADIUS_IN_METERS / math.cos(_deg_rad(latitude + lat_delta)))
        long_delta_bottom = _rad_deg(
            width / EARTH_RADIUS_IN_METERS / math.cos(_deg_rad(latitude - lat_delta)))
        long_delta = long_delta_bottom if latitude < 0 else long_delta_top
        min_lon, max_lon = longitude - long_delta, longitude + long_delta
        min_lat, max_lat = latitude - lat_delta, latitude + lat_delta
        if circular:
            radius_meters = shape.radius
        else:
            radius_meters = math.sqrt((shape.width / 2) * (shape.width / 2)
                                      + (shape.height / 2) * (shape.height / 2))
        radius_meters *= shape.conversion
    else:
        radius_meters = shape.radius * shape.conversion
        long_delta = _rad_deg(
            radius_meters / EARTH_RADIUS_IN_METERS / math.cos(_deg_rad(latitude)))
        lat_delta = _rad_deg(radius_meters / EARTH_RADIUS_IN_METERS)
        min_lon, max_lon = longitude - long_delta, longitude + long_delta
        min_lat, max_lat = latitude - lat_delta, latitude + lat_delta

    steps = estimate_steps_by_radius(radius_meters, latitude)
    bits = geohash_encode(longitude, latitude, steps)
    if bits is None:
        raise ApplyError(f"search centre {longitude},{latitude} cannot be encoded")
    nb = geohash_neighbors(bits, steps)

    north = geohash_decode(nb["north"], steps)
    south = geohash_decode(nb["south"], steps)
    east = geohash_decode(nb["east"], steps)
    west = geohash_decode(nb["west"], steps)
    if variant >= V62:
        decrease = (north[3] < max_lat or south[2] > min_lat
                    or east[1] < max_lon or west[0] > min_lon)
    else:
        decrease = (
            distance(longitude, latitude, longitude, north[3]) < radius_meters
            or distance(longitude, latitude, longitude, south[2]) < radius_meters
            or distance(longitude, latitude, east[1], latitude) < radius_meters
            or distance(longitude, latitude, west[0], latitude) < radius_meters
        )
    if steps > 1 and decrease:
        steps -= 1
        bits = geohash_encode(longitude, latitude, steps)
        assert bits is not None
        nb = geohash_neighbors(bits, steps)
    area = geohash_decode(bits, steps)

    boxes: dict[str, Box] = {k: (v, steps) for k, v in nb.items()}
    if steps >= 2:
        if area[2] < min_lat:
            boxes["south"] = boxes["south_west"] = boxes["south_east"] = None
        if area[3] > max_lat:
            boxes["north"] = boxes["north_east"] = boxes["north_west"] = None
        if area[0] < min_lon:
            boxes["west"] = boxes["south_west"] = boxes["north_west"] = None
        if area[1] > max_lon:
            boxes["east"] = boxes["south_east"] = boxes["north_east"] = None
    return [(bits, steps), boxes["north"], boxes["south"], boxes["east"], boxes["west"],
            boxes["north_east"], boxes["north_west"], boxes["south_east"], boxes["south_west"]]


# A candidate: (dist, score, member), as geoPoint.
Point = tuple[float, float, bytes]


def _within(shape: GeoShape, variant: int) -> Callable[[float], float | None]:
    """`geoWithinShape` / `geoAppendIfWithinRadius`: the distance of a member (by score) to
    the centre, or None when outside the shape."""
    clamp = variant >= V60
    x1, y1 = shape.lon, shape.lat
    if shape.type == CIRCULAR:
        radius = shape.radius * shape.conversion
        distance = distance_v70 if variant >= V70 else distance_v50

        def in_radius(score: float) -> float | None:
            x2, y2 = decode_score(score, clamp)
            d = distance(x1, y1, x2, y2)
            return None if d > radius else d

        return in_radius

    width_m = shape.width * shape.conversion
    height_m = shape.height * shape.conversion
    if variant >= V70:

        def in_box(score: float) -> float | None:
            x2, y2 = decode_score(score, clamp)
            if lat_distance(y2, y1) > height_m / 2:
                return None
            if distance_v70(x2, y2, x1, y2) > width_m / 2:
                return None
            return distance_v70(x1, y1, x2, y2)

        return in_box

    def in_box_v62(score: float) -> float | None:
        x2, y2 = decode_score(score, clamp)
        lon_distance = distance_v50(x2, y2, x1, y2)
        lat_dist = distance_v50(x2, y2, x2, y1)
        if lon_distance > width_m / 2 or lat_dist > height_m / 2:
            return None
        return distance_v50(x1, y1, x2, y2)

    return in_box_v62


def _members_of_all_neighbors(zs: ZSet, boxes: list[Box], within: Callable[[float], float | None],
                              limit: int) -> list[Point]:
    """`membersOfAllNeighbors`: candidates box by box, each box in (score, member) order."""
    ga: list[Point] = []
    last_processed = 0
    index = zs.index
    for i, box in enumerate(boxes):
        if box is None:
            continue
        # Huge radii can make adjacent neighbours equal: skip a repeat of the last one.
        if last_processed and box == boxes[last_processed]:
            continue
        if ga and limit and len(ga) >= limit:
            break
        bits, step = box
        lo = float(geohash_align52(bits, step))
        hi = float(geohash_align52((bits + 1) & _M64, step))
        start, end = zs.score_range(lo, False, hi, True)
        for score, member in index.islice(start, end):
            d = within(score)
            if d is not None:
                ga.append((d, score, member))
            if ga and limit and len(ga) >= limit:
                break
        last_processed = i
    return ga


# ---- distance order for pqsort (sort_gp_asc / sort_gp_desc) ----



def _cmp_asc(a: Point, b: Point) -> int:
    # sort_gp_asc
    if a[0] > b[0]:
        return 1
    if a[0] == b[0]:
        return 0
    return -1


def _cmp_desc(a: Point, b: Point) -> int:
    return -_cmp_asc(a, b)


# ---- the commands ----

_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
SORT_NONE, SORT_ASC, SORT_DESC = 0, 1, 2

RADIUS_COORDS, RADIUS_MEMBER, GEOSEARCHSTORE = 1, 2, 3


def _unit(raw: bytes) -> float:
    conv = _UNITS.get(raw.lower())
    if conv is None:
        raise ApplyError(f"unsupported unit {raw!r}")
    return conv


def _lonlat(lon_raw: bytes, lat_raw: bytes) -> tuple[float, float]:
    lon, lat = double_arg(lon_raw), double_arg(lat_raw)
    if lon < GEO_LONG_MIN or lon > GEO_LONG_MAX or lat < GEO_LAT_MIN or lat > GEO_LAT_MAX:
        raise ApplyError(f"invalid longitude,latitude pair {lon},{lat}")
    return lon, lat


def _member_lonlat(zs: ZSet, member: bytes, clamp: bool) -> tuple[float, float]:
    score = zs.get(member)
    if score is None:
        raise ApplyError("could not decode requested zset member")
    return decode_score(score, clamp)


def georadius_generic(ks: Keyspace, db: int, argv: list[bytes], mode: int) -> None:
    """`georadiusGeneric` for the forms that store (a search without STORE writes nothing)."""
    variant = geo_variant(ks)
    clamp = variant >= V60
    storekey: bytes | None = None
    storedist = False
    src_index = 2 if mode == GEOSEARCHSTORE else 1
    zs = zset_for_write(ks, db, argv[src_index])
    shape = GeoShape()
    if mode == RADIUS_COORDS:
        base = 6
        shape.type = CIRCULAR
        shape.lon, shape.lat = _lonlat(argv[2], argv[3])
        shape.radius, shape.conversion = double_arg(argv[4]), _unit(argv[5])
    elif mode == RADIUS_MEMBER:
        base = 5
        if zs is not None:
            shape.type = CIRCULAR
            shape.lon, shape.lat = _member_lonlat(zs, argv[2], clamp)
            shape.radius, shape.conversion = double_arg(argv[3]), _unit(argv[4])
    else:
        base = 3
        storekey = argv[1]
        storedist = False

    any_ = with_options = False
    sort = SORT_NONE
    count = 0
    n = len(argv)
    i = base
    geosearch = mode == GEOSEARCHSTORE
    while i < n:
        arg = argv[i].lower()
        left = n - i - 1
        if arg in (b"withdist", b"withhash", b"withcoord"):
            with_options = True
        elif arg == b"any":
            any_ = True
        elif arg == b"asc":
            sort = SORT_ASC
        elif arg == b"desc":
            sort = SORT_DESC
        elif arg == b"count" and left >= 1:
            count = parse_int(argv[i + 1])
            if count <= 0:
                raise ApplyError("COUNT must be > 0")
            i += 1
        elif arg in (b"store", b"storedist") and left >= 1 and not geosearch:
            storekey = argv[i + 1]
            storedist = arg == b"storedist"
            i += 1
        elif arg == b"storedist" and geosearch:
            storedist = True
        elif arg == b"frommember" and left >= 1 and geosearch:
            if zs is not None:
                shape.lon, shape.lat = _member_lonlat(zs, argv[i + 1], clamp)
            i += 1
        elif arg == b"fromlonlat" and left >= 2 and geosearch:
            shape.lon, shape.lat = _lonlat(argv[i + 1], argv[i + 2])
            i += 2
        elif arg == b"byradius" and left >= 2 and geosearch:
            shape.type = CIRCULAR
            shape.radius, shape.conversion = double_arg(argv[i + 1]), _unit(argv[i + 2])
            i += 2
        elif arg == b"bybox" and left >= 3 and geosearch:
            shape.type = RECTANGLE
            shape.width, shape.height = double_arg(argv[i + 1]), double_arg(argv[i + 2])
            shape.conversion = _unit(argv[i + 3])
            i += 3
        else:
            raise ApplyError(f"syntax error at {argv[i]!r}")
        i += 1

    if storekey is None:
        return  # a plain search: nothing was written on the master
    if with_options:
        raise ApplyError("STORE is not compatible with WITHDIST, WITHHASH and WITHCOORD")
    if zs is None:
        ks.delete(db, storekey)
        return
    if geosearch and shape.type == 0:
        raise ApplyError("GEOSEARCHSTORE needs BYRADIUS or BYBOX")

    if variant < V62:
        any_ = False  # no ANY before 6.2 (the master would have refused it)
    if count and sort == SORT_NONE and not any_:
        sort = SORT_ASC

    boxes = _areas(shape, variant)
    ga = _members_of_all_neighbors(zs, boxes, _within(shape, variant), count if any_ else 0)

    returned = len(ga) if count == 0 or len(ga) < count else count
    if sort != SORT_NONE and returned < len(ga):
        # When everything is kept the order does not matter (a zset is stored); when COUNT
        # cuts, which of equally distant points are kept depends on the sort Redis ran.
        if variant >= V62:
            pqsort(ga, _cmp_asc if sort == SORT_ASC else _cmp_desc, 0, returned - 1)
        else:
            ga.sort(key=lambda p: p[0], reverse=sort == SORT_DESC)  # glibc msort: stable

    conversion = shape.conversion
    if storedist:
        result = {member: d / conversion for d, _, member in ga[:returned]}
    else:
        result = {member: score for _, score, member in ga[:returned]}
    store_zset(ks, db, storekey, result)


def _georadius_applier(mode: int) -> Callable[[Keyspace, int, list[bytes]], None]:
    def apply(ks: Keyspace, db: int, argv: list[bytes]) -> None:
        try:
            georadius_generic(ks, db, argv, mode)
        except Exception:
            # The written key is the STORE/STOREDIST argument: mark it, not the source.
            for j in range(len(argv) - 1):
                if argv[j].lower() in (b"store", b"storedist"):
                    ks.unsupported_keys.add((db, argv[j + 1]))
            raise

    return apply


# keys=(1, 0, 1) marks nothing by position: the applier marks the STORE key itself.
write_command("georadius", keys=(1, 0, 1))(_georadius_applier(RADIUS_COORDS))
write_command("georadiusbymember", keys=(1, 0, 1))(_georadius_applier(RADIUS_MEMBER))


@write_command("geosearchstore")
def geosearchstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    georadius_generic(ks, db, argv, GEOSEARCHSTORE)


@write_command("geoadd")
def geoadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GEOADD is propagated as `zadd`; this covers a verbatim one (e.g. an AOF-style feed)."""
    i = 2
    while i < len(argv) and argv[i].lower() in (b"nx", b"xx", b"ch"):
        i += 1
    if (len(argv) - i) % 3 or len(argv) == i:
        raise ApplyError("GEOADD: syntax error")
    zargv = [b"zadd", *argv[1:i]]
    for j in range(i, len(argv), 3):
        lon, lat = _lonlat(argv[j], argv[j + 1])
        bits = geohash_encode(lon, lat, GEO_STEP_MAX)
        assert bits is not None
        zargv += [b"%d" % geohash_align52(bits, GEO_STEP_MAX), argv[j + 2]]
    zadd(ks, db, zargv)
