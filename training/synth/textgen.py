"""Hotline-domain Mandarin sentences for synthetic training speech.

Two kinds of sentence, mixed by :class:`TextGenerator`:

* **templates** (:data:`TEMPLATES`): caller and agent turns of a 12345 call (noise, garbage
  sorting, property management, social security, parking, outages, ...) whose slots are filled
  from Shanghai districts, roads, lanes, compounds, Jiangsu/Zhejiang cities, names, and numbers
  read out as a caller says them (phone and work-order numbers digit by digit with 幺, dates,
  amounts) through ``serving.text.normalize``;
* **word sentences**: frequent words of jieba's dictionary (MIT) strung together so that the
  3,500 most frequent characters (:func:`common_chars`) all occur: each word sentence carries
  ``WORDS_PER_COVER`` words that bring in characters not yet seen in the current pass over the
  3,500, so one pass takes at most ``ceil(3500 / WORDS_PER_COVER)`` word sentences.

Every sentence is Chinese characters only and is its own exact transcript. Output depends only on
the seed (``random.Random(seed)``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache

_HANZI_ONLY = re.compile(r"^[\u4e00-\u9fff]+$")
WORDS_PER_COVER = 5
N_COMMON = 3500


@dataclass(frozen=True)
class Sentence:
    """One utterance text. ``template_id`` is ``T001``.. for templates, ``W`` for word sentences."""

    text: str
    role: str  # "caller" | "agent"
    domain: str
    template_id: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Template:
    id: str
    role: str
    domain: str
    pattern: str


# ------------------------------------------------------------------------------------ slot lists

STREETS_BY_DISTRICT: dict[str, tuple[str, ...]] = {
    d: tuple(v.split())
    for d, v in {
        "长宁区": "仙霞新村街道 天山路街道 虹桥街道 新华路街道 江苏路街道 华阳路街道 周家桥街道 "
        "北新泾街道 程家桥街道 新泾镇",
        "闵行区": "莘庄镇 七宝镇 梅陇镇 江川路街道 古美路街道 颛桥镇 浦江镇",
        "浦东新区": "陆家嘴街道 花木街道 张江镇 金桥镇 川沙新镇 惠南镇 三林镇",
        "徐汇区": "田林街道 康健新村街道 枫林路街道 漕河泾街道 龙华街道",
        "静安区": "南京西路街道 曹家渡街道 彭浦新村街道 大宁路街道",
        "普陀区": "曹杨新村街道 长风新村街道 真如镇街道 万里街道",
        "杨浦区": "五角场街道 控江路街道 殷行街道 新江湾城街道",
        "虹口区": "四川北路街道 欧阳路街道 凉城新村街道 江湾镇街道",
        "黄浦区": "外滩街道 豫园街道 打浦桥街道 老西门街道",
        "宝山区": "淞南镇 大场镇 顾村镇 月浦镇",
        "嘉定区": "南翔镇 安亭镇 江桥镇 马陆镇",
        "松江区": "九亭镇 泗泾镇 方松街道 洞泾镇",
        "青浦区": "徐泾镇 朱家角镇 赵巷镇 华新镇",
        "奉贤区": "南桥镇 奉城镇 庄行镇",
        "金山区": "石化街道 朱泾镇 枫泾镇",
        "崇明区": "城桥镇 堡镇 陈家镇",
    }.items()
}
STREETS = tuple(s for v in STREETS_BY_DISTRICT.values() for s in v)
DISTRICTS = tuple(STREETS_BY_DISTRICT)
ROADS = (
    "愚园路 延安西路 虹桥路 天山路 仙霞路 长宁路 淮海中路 南京西路 四川北路 曹杨路 武宁路 长寿路 "
    "江宁路 漕溪北路 衡山路 肇嘉浜路 世纪大道 张杨路 浦东大道 杨高中路 莲花路 沪闵路 七莘路 "
    "共康路 黄兴路 控江路 国权路 大连路 曲阳路 牡丹江路 友谊路 博乐路 城中路 人民北路 公园路 "
    "古美路 吴中路 中山北路 凯旋路 娄山关路 番禺路 新华路 定西路 剑河路 北翟路 金沙江路 真北路 "
    "宜山路 龙华中路 虹梅路 沪太路 共和新路 场中路 闸殷路 五角场 长阳路 宁国路 松汇中路 南亭公路"
).split()
COMPOUNDS = (
    "阳光花园 古北新城 天山新村 仙霞新村 华阳小区 曹杨新村 康健新村 田林新村 梅陇三村 金杨新村 "
    "世纪花园 春申城 莘城苑 中远两湾城 万科城市花园 绿地世纪城 明华苑 锦绣华城 东方城市花园 "
    "虹桥新城 玉兰苑 紫藤公寓 平阳小区 上南新村 彩虹湾 新泾家园 延西小区 水城南路小区 "
    "佳佳花园 茶陵小区 幸福里 和平新村 凉城新村 通河新村 张庙一条街 海上海 香花桥小区"
).split()
CITIES = (
    "苏州 无锡 常州 南京 南通 扬州 镇江 泰州 盐城 徐州 昆山 太仓 常熟 江阴 杭州 宁波 嘉兴 湖州 "
    "绍兴 温州 台州 金华 舟山 义乌 平湖 海宁"
).split()
SURNAMES = (
    "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 "
    "彭 肖 田 董 袁 潘 蒋 蔡 余 杜 叶 程 苏 魏 吕 丁 沈 姚 卢 姜 崔 钟 谭 陆 汪 范 金 石 廖 "
    "贾 夏 方 白 邹 孟 熊 秦 邱 江 尹 薛 段 雷 侯 史 陶 顾 毛 郝 龚 邵 钱 严 戴 莫 孔 汤"
).split()
TITLES = "先生 女士 阿姨 师傅 老师 同志".split()
FILLERS = "嗯 那个 就是说 呃 然后 就是 这个 那么 哎".split()
YES = "对对对 对的 是的 嗯对 对 好的 可以".split()
NOISE_SOURCES = (
    "楼上装修 广场舞 工地夜间施工 酒吧 空调外机 邻居家的狗 烧烤店 卡拉OK 菜场凌晨卸货 "
    "隔壁打麻将 地铁施工 小区门口的商铺音响"
).split()
NOISE_SOURCES = tuple(s for s in NOISE_SOURCES if _HANZI_ONLY.match(s))
SHOPS = (
    "超市 健身房 培训机构 理发店 饭店 快递公司 美容院 家具店 装修公司 中介公司 电动车店 "
    "手机店 奶茶店 药店 洗衣店 早教中心 游泳馆 网店"
).split()
PRODUCTS = (
    "手机 空调 冰箱 洗衣机 预付卡 会员卡 电动车 热水器 学习机 床垫 羽绒服 保健品 电脑 "
    "油烟机 燃气灶 家具"
).split()
SCHOOL_KINDS = "实验小学 第一中心小学 第二小学 外国语小学 实验学校 民办小学".split()
UTILITIES = "停水 停电 停气 没有热水 水压很低 水是黄的 跳闸".split()
ROAD_PROBLEMS = (
    "路面塌陷 窨井盖坏了 窨井盖不见了 路灯不亮 红绿灯坏了 人行道砖头翘起来了 路上有个大坑 "
    "下水道堵了 积水很深"
).split()


@lru_cache(maxsize=1)
def _num():
    from serving.text import normalize

    return normalize


def _pick(seq) -> Callable[[random.Random], str]:
    items = tuple(seq)
    return lambda rng: rng.choice(items)


def _count(n: int) -> str:
    """A quantity before a measure word: 2 -> 两."""
    return "两" if n == 2 else _num().read_cardinal(n)


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.8:
        digits = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
    else:
        digits = "021" + rng.choice("3456") + "".join(rng.choice("0123456789") for _ in range(7))
    return _num().read_digits(digits, one="幺")


def _order(rng: random.Random) -> str:
    y = rng.choice(["2024", "2025", "2026"])
    digits = y + f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" + f"{rng.randint(0, 9999):04d}"
    return _num().read_digits(digits, one="幺")


def _date(rng: random.Random) -> str:
    n = _num()
    day = n.read_cardinal(rng.randint(1, 28)) + rng.choice(["号", "日"])
    out = n.read_cardinal(rng.randint(1, 12)) + "月" + day
    if rng.random() < 0.25:
        out = n.read_year(rng.choice(["2024", "2025", "2026"])) + "年" + out
    return out


def _time(rng: random.Random) -> str:
    h = rng.randint(1, 11)
    out = rng.choice(["早上", "上午", "中午", "下午", "晚上", "半夜"]) + _count(h) + "点"
    r = rng.random()
    if r < 0.3:
        out += "半"
    elif r < 0.5:
        out += _num().read_cardinal(rng.choice([10, 15, 20, 40, 45, 50])) + "分"
    return out


def _amount(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        n = rng.choice([rng.randint(2, 99), rng.randint(1, 30) * 100, rng.randint(1, 9) * 1000])
        return _count(n) + rng.choice(["元", "块钱", "块"])
    if r < 0.8:
        return _num().read_decimal(f"{rng.randint(1, 999)}.{rng.randint(1, 9)}") + "元"
    return _count(rng.randint(1, 20)) + "万"


def _lane(rng: random.Random) -> str:
    return _num().read_cardinal(rng.randint(1, 1500)) + "弄"


def _no(rng: random.Random) -> str:
    return _num().read_cardinal(rng.randint(1, 120)) + "号"


def _bldg(rng: random.Random) -> str:
    return _num().read_cardinal(rng.randint(1, 40)) + rng.choice(["号楼", "号", "栋", "幢"])


def _room(rng: random.Random) -> str:
    floor = rng.randint(1, 25)
    return _num().read_digits(f"{floor}{rng.randint(1, 8):02d}", one="一") + "室"


def _address(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(ROADS) + _lane(rng) + _no(rng) + _room(rng)
    return rng.choice(COMPOUNDS) + _bldg(rng) + _room(rng)


def _person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(TITLES)


def _place(rng: random.Random) -> str:
    district = rng.choice(DISTRICTS)
    return district + rng.choice(STREETS_BY_DISTRICT[district])


def _filler(rng: random.Random) -> str:
    return rng.choice(FILLERS) if rng.random() < 0.5 else ""


def _duration(rng: random.Random) -> str:
    unit = rng.choice(["天", "个星期", "个月", "年"])
    return _count(rng.randint(1, 12 if unit != "年" else 5)) + unit


SLOTS: dict[str, Callable[[random.Random], str]] = {
    "f": _filler,
    "yes": _pick(YES),
    "district": _pick(DISTRICTS),
    "dist": lambda rng: rng.choice(DISTRICTS).removesuffix("新区").removesuffix("区"),
    "street": _pick(STREETS),
    "place": _place,
    "road": _pick(ROADS),
    "lane": _lane,
    "no": _no,
    "bldg": _bldg,
    "room": _room,
    "compound": _pick(COMPOUNDS),
    "addr": _address,
    "city": _pick(CITIES),
    "person": _person,
    "surname": _pick(SURNAMES),
    "phone": _phone,
    "order": _order,
    "date": _date,
    "time": _time,
    "amount": _amount,
    "duration": _duration,
    "age": lambda rng: _num().read_cardinal(rng.randint(60, 95)) + "岁",
    "noise_src": _pick(NOISE_SOURCES),
    "shop": _pick(SHOPS),
    "product": _pick(PRODUCTS),
    "school": lambda rng: rng.choice(DISTRICTS)[:2] + rng.choice(SCHOOL_KINDS),
    "utility": _pick(UTILITIES),
    "road_problem": _pick(ROAD_PROBLEMS),
    "count": lambda rng: _count(rng.randint(2, 10)),
}

# --------------------------------------------------------------------------------- templates
# (role, domain, pattern); ids T001.. follow this order, so append new ones at the end.
_RAW_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    # agent: opening, questions, confirmations, closing
    ("agent", "general", "您好这里是幺二三四五市民服务热线请问有什么可以帮您"),
    ("agent", "general", "您好幺二三四五很高兴为您服务请讲"),
    ("agent", "general", "请问您贵姓"),
    ("agent", "general", "请问您是在哪个区哪个街道"),
    ("agent", "general", "请问具体地址是哪里"),
    ("agent", "general", "您的联系电话是多少"),
    ("agent", "general", "您说的是{addr}对吗"),
    ("agent", "general", "跟您确认一下电话号码是{phone}对吧"),
    ("agent", "general", "好的{person}您反映的问题已为您登记"),
    ("agent", "general", "您的工单号是{order}请您记一下"),
    ("agent", "general", "我们会在{count}个工作日内转给相关部门处理"),
    ("agent", "general", "处理结果会有工作人员给您回电话请保持电话畅通"),
    ("agent", "general", "请问还有其他问题需要咨询吗"),
    ("agent", "general", "感谢您的来电再见"),
    ("agent", "general", "不好意思电话有点听不清楚您能再说一遍吗"),
    ("agent", "general", "请您稍等我帮您查询一下"),
    ("agent", "general", "这个问题需要您本人带好身份证到{district}行政服务中心办理"),
    # caller: generic
    ("caller", "general", "喂你好{f}我想反映一个问题"),
    ("caller", "general", "{yes}就是这个地址"),
    ("caller", "general", "我姓{surname}电话是{phone}"),
    ("caller", "general", "我住在{place}{addr}"),
    ("caller", "general", "{f}我之前打过电话的工单号是{order}到现在还没人处理"),
    ("caller", "general", "{yes}没有别的问题了谢谢你啊"),
    ("caller", "general", "我是从{city}过来的现在住在{dist}这边"),
    # noise
    ("caller", "noise", "{f}我们小区{noise_src}每天吵到{time}根本睡不着觉"),
    ("caller", "noise", "{district}{road}这边{noise_src}太吵了已经{duration}了"),
    ("caller", "noise", "我家楼上{f}每天晚上都在装修敲敲打打的物业也不管"),
    ("agent", "noise", "请问噪音大概是每天几点到几点"),
    # garbage sorting
    ("caller", "garbage", "我想问一下{product}的包装是干垃圾还是可回收物"),
    ("caller", "garbage", "{f}我们小区的湿垃圾桶{duration}没人清运了臭死了"),
    ("caller", "garbage", "{compound}的垃圾箱房晚上不开门干垃圾湿垃圾都堆在外面"),
    ("agent", "garbage", "湿垃圾要破袋投放干垃圾和有害垃圾要分开投放"),
    # property management
    ("caller", "property", "{compound}的物业{f}电梯坏了{duration}都不来修"),
    ("caller", "property", "物业费一年要{amount}但是小区的绿化根本没人管"),
    ("caller", "property", "我家楼道里的灯坏了跟物业讲了好几次都没用"),
    ("agent", "property", "这个情况我们会转给{street}和房管所协调物业处理"),
    # renting
    ("caller", "renting", "房东不肯退押金{amount}{f}合同是到{date}的"),
    ("caller", "renting", "{f}隔壁那套房子是群租的住了十几个人很不安全"),
    ("caller", "renting", "我通过中介在{road}租的房子中介跑路了"),
    # social security card
    ("caller", "social_security", "我的社保卡丢了想问一下怎么补办"),
    ("caller", "social_security", "{f}我是{city}户口在上海工作社保卡怎么申领"),
    ("agent", "social_security", "社保卡补办可以在随申办上申请也可以去就近的社区事务受理服务中心"),
    # residence permit
    ("caller", "residence_permit", "居住证到期了要续签需要带什么材料"),
    ("caller", "residence_permit", "我在上海交了{duration}社保能不能办居住证积分"),
    ("agent", "residence_permit", "居住证签注需要居住登记满半年并且有合法稳定的住所"),
    # housing provident fund
    ("caller", "provident_fund", "我想提取公积金付房租每个月能提多少"),
    ("caller", "provident_fund", "{f}公司没有给我交公积金已经{duration}了"),
    ("agent", "provident_fund", "住房公积金的问题您也可以拨打公积金热线咨询"),
    # medical insurance
    ("caller", "medical_insurance", "我在{city}看病能不能用上海的医保卡直接结算"),
    ("caller", "medical_insurance", "{f}我爸爸{age}了医保报销比例是多少"),
    ("caller", "medical_insurance", "医院说我的医保卡状态不正常刷不了"),
    # pensions
    ("caller", "pension", "我{date}办的退休养老金到现在还没发下来"),
    ("caller", "pension", "{f}我妈妈今年{age}高龄津贴怎么申请"),
    ("agent", "pension", "养老金一般每个月{date}前后发放到您的社保卡里"),
    # traffic and parking
    ("caller", "traffic", "{road}上面每天都有车乱停把消防通道都堵住了"),
    ("caller", "traffic", "{f}我的车停在{compound}门口被贴了罚单我觉得不合理"),
    ("caller", "traffic", "{road}和{road}路口的红绿灯时间太短了老人过马路来不及"),
    ("caller", "traffic", "小区里的停车位被外面的车占了{f}晚上回来没地方停"),
    # road repairs
    ("caller", "road", "{district}{road}{no}门口{road_problem}很危险"),
    ("caller", "road", "{f}{road}那边{road_problem}已经{duration}了没人来修"),
    ("agent", "road", "好的我们会通知{district}道路养护部门尽快派人查看"),
    # water power gas
    ("caller", "utilities", "{compound}从{time}开始就{utility}了也没有通知"),
    ("caller", "utilities", "{f}我们这栋楼{utility}请问什么时候能恢复"),
    ("agent", "utilities", "这个片区在检修管道预计{time}恢复供应"),
    # school enrolment
    ("caller", "school", "我孩子今年要上小学了户口在{district}能不能报{school}"),
    ("caller", "school", "{f}非沪籍的孩子入学要满足什么条件"),
    ("agent", "school", "义务教育阶段入学信息登记一般在每年{date}左右开始"),
    # business licences
    ("caller", "business", "我想开个{shop}营业执照要去哪里办"),
    ("caller", "business", "{f}个体工商户的营业执照地址变更要带什么材料"),
    ("agent", "business", "营业执照可以在一网通办上在线申请也可以去{district}市场监管局窗口办理"),
    # consumer complaints
    ("caller", "consumer", "我在{shop}办了一张卡花了{amount}现在店关门了"),
    ("caller", "consumer", "{f}网上买的{product}有质量问题商家不给退货"),
    ("caller", "consumer", "{road}那家{shop}乱收费一共收了我{amount}"),
    ("agent", "consumer", "建议您保留好发票和聊天记录我们会转给市场监管部门"),
    # elderly care
    ("caller", "elderly", "我妈妈{age}了一个人住想申请上门的养老服务"),
    ("caller", "elderly", "{f}长护险要怎么申请评估等级是谁来评"),
    ("caller", "elderly", "我们{street}有没有老年助餐点一顿饭多少钱"),
    ("agent", "elderly", "您可以向{street}的社区事务受理服务中心申请长护险评估"),
    # a few more colloquial turns
    ("caller", "general", "{yes}{f}就是{district}那个{compound}"),
    ("caller", "general", "{f}麻烦你们帮我催一下好吧我已经等了{duration}了"),
    ("agent", "general", "您反映的情况我已经记录下来了会尽快帮您转办"),
    ("agent", "general", "嗯好的我明白了那个具体是在几号楼几室"),
)

TEMPLATES: tuple[Template, ...] = tuple(
    Template(f"T{i + 1:03d}", role, domain, pattern)
    for i, (role, domain, pattern) in enumerate(_RAW_TEMPLATES)
)
DOMAINS: tuple[str, ...] = tuple(sorted({t.domain for t in TEMPLATES}))
_SLOT = re.compile(r"\{(\w+)\}")


def render_template(template: Template, rng: random.Random) -> Sentence:
    """Fill every ``{slot}`` of ``template`` with a fresh value."""

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in SLOTS:
            raise KeyError(f"template {template.id} uses unknown slot {{{name}}}")
        return SLOTS[name](rng)

    text = _SLOT.sub(fill, template.pattern)
    if not _HANZI_ONLY.match(text):
        raise ValueError(f"template {template.id} produced non-Chinese text {text!r}")
    return Sentence(text, template.role, template.domain, template.id)


# ---------------------------------------------------------------------------- jieba words


@lru_cache(maxsize=1)
def jieba_words() -> tuple[tuple[str, int], ...]:
    """(word, frequency) of jieba's dict.txt, Chinese-character words only, most frequent first."""
    import jieba

    out: list[tuple[str, int]] = []
    with jieba.get_dict_file() as f:
        for line in f:
            parts = line.decode("utf-8").split()
            if len(parts) >= 2 and _HANZI_ONLY.match(parts[0]):
                out.append((parts[0], int(parts[1])))
    out.sort(key=lambda wf: (-wf[1], wf[0]))
    return tuple(out)


@lru_cache(maxsize=4)
def common_chars(n: int = N_COMMON) -> tuple[str, ...]:
    """The ``n`` most frequent characters, each character's count being the summed frequency of
    the jieba words it occurs in (once per occurrence)."""
    counts: dict[str, int] = {}
    for word, freq in jieba_words():
        for ch in word:
            counts[ch] = counts.get(ch, 0) + freq
    ranked = sorted(counts.items(), key=lambda cf: (-cf[1], cf[0]))
    return tuple(ch for ch, _ in ranked[:n])


@lru_cache(maxsize=4)
def cover_words(n: int = N_COMMON) -> dict[str, str]:
    """For each common character, the most frequent 2-4 character word containing it (the
    character alone if no such word exists)."""
    targets = set(common_chars(n))
    best: dict[str, str] = {}
    for word, _ in jieba_words():  # most frequent first
        if 2 <= len(word) <= 4:
            for ch in word:
                if ch in targets and ch not in best:
                    best[ch] = word
    return {ch: best.get(ch, ch) for ch in common_chars(n)}


@lru_cache(maxsize=1)
def _frequent_words(limit: int = 20000) -> tuple[tuple[str, ...], tuple[int, ...]]:
    words = [w for w in jieba_words() if len(w[0]) >= 2][:limit]
    return tuple(w for w, _ in words), tuple(f for _, f in words)


class CharCover:
    """Passes over the common characters in a seeded random order; each call to :meth:`take`
    returns words that bring in characters not yet covered in the current pass."""

    def __init__(self, rng: random.Random, n: int = N_COMMON):
        self.rng = rng
        self.words = cover_words(n)
        self.order: list[str] = []
        self.pos = 0
        self.seen: set[str] = set()
        self.passes = 0

    def _new_pass(self) -> None:
        self.order = list(self.words)
        self.rng.shuffle(self.order)
        self.pos = 0
        self.seen = set()
        self.passes += 1

    def take(self, k: int) -> list[str]:
        out: list[str] = []
        while len(out) < k:
            if self.pos >= len(self.order):
                if out:
                    break
                self._new_pass()
            ch = self.order[self.pos]
            self.pos += 1
            if ch in self.seen:
                continue
            word = self.words[ch]
            out.append(word)
            self.seen.update(word)
        return out


def word_sentence(rng: random.Random, cover: CharCover) -> Sentence:
    """A string of jieba words: ``WORDS_PER_COVER`` covering words plus 1-3 frequent words."""
    words = cover.take(WORDS_PER_COVER)
    vocab, freqs = _frequent_words()
    words += rng.choices(vocab, weights=freqs, k=rng.randint(1, 3))
    rng.shuffle(words)
    return Sentence("".join(words), "caller", "words", "W")


def passes_needed(n: int = N_COMMON) -> int:
    """Upper bound on word sentences for one full pass over the ``n`` common characters."""
    return math.ceil(n / WORDS_PER_COVER)


# ------------------------------------------------------------------------------ the generator


class TextGenerator:
    """Deterministic stream of :class:`Sentence`: templates, and with probability
    ``word_fraction`` a word sentence. ``roles``/``domains`` restrict the templates used."""

    def __init__(
        self,
        seed: int,
        word_fraction: float = 0.3,
        roles: tuple[str, ...] | None = None,
        domains: tuple[str, ...] | None = None,
    ):
        if not 0.0 <= word_fraction <= 1.0:
            raise ValueError(f"word_fraction must be in [0, 1], got {word_fraction}")
        self.rng = random.Random(seed)
        self.word_fraction = word_fraction
        self.templates = [
            t
            for t in TEMPLATES
            if (roles is None or t.role in roles) and (domains is None or t.domain in domains)
        ]
        if not self.templates and word_fraction < 1.0:
            raise ValueError(f"no template has role in {roles} and domain in {domains}")
        self.cover = CharCover(random.Random(self.rng.random()))

    def __iter__(self) -> Iterator[Sentence]:
        while True:
            yield self.next()

    def next(self) -> Sentence:
        if self.rng.random() < self.word_fraction:
            return word_sentence(self.rng, self.cover)
        return render_template(self.rng.choice(self.templates), self.rng)

    def take(self, n: int) -> list[Sentence]:
        return [self.next() for _ in range(n)]


def coverage(sentences, n: int = N_COMMON) -> float:
    """Fraction of the ``n`` common characters that occur in ``sentences`` (texts or Sentence)."""
    seen: set[str] = set()
    for s in sentences:
        seen.update(s.text if isinstance(s, Sentence) else s)
    target = common_chars(n)
    return sum(ch in seen for ch in target) / len(target)


# -------------------------------------------------------------------------------- call scripts


def _by(role: str, domain: str) -> list[Template]:
    return [t for t in TEMPLATES if t.role == role and t.domain == domain]


def call_script(rng: random.Random, domain: str | None = None) -> list[Sentence]:
    """The turns of one plausible call: greeting, the caller's problem in one domain, address and
    phone questions, the agent's answer, work-order number and goodbye."""
    topics = [d for d in DOMAINS if d not in ("general", "words")]
    domain = domain or rng.choice(topics)
    if domain not in topics:
        raise ValueError(f"unknown call domain {domain!r}; choose from {topics}")
    general = {t.pattern: t for t in TEMPLATES if t.domain == "general"}

    def g(pattern_start: str) -> Template:
        return next(t for p, t in general.items() if p.startswith(pattern_start))

    caller = _by("caller", domain)
    agent = _by("agent", domain) or [g("您反映的情况")]
    plan = [
        rng.choice([g("您好这里是"), g("您好幺二三四五")]),
        rng.choice(caller),
        g("请问您是在哪个区"),
        g("我住在"),
        rng.choice(caller),
        rng.choice(agent),
        g("您的联系电话"),
        g("我姓"),
        g("好的{person}"),
        g("您的工单号"),
        rng.choice([g("{yes}没有别的"), g("{yes}就是这个")]),
        g("感谢您的来电"),
    ]
    return [render_template(t, rng) for t in plan]
