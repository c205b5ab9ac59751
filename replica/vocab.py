"""Vocabulary for the synthetic posts: outlets, securities and sentence templates.

Everything here is written for the replica; no sentence is taken from a real article. Templates
use ``{slot}`` fields that ``replica.textgen`` fills; they avoid Markdown syntax characters so
that a sentence renders the same whether it sits in an HTML block or in a Markdown paragraph.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``"a:b c:d"`` -> ``(("a", "b"), ("c", "d"))``; keeps the long lists compact."""
    return tuple((a, b) for a, b in (item.split(":") for item in text.split()))


def _triples(text: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((a, b, c) for a, b, c in (item.split(":") for item in text.split()))


# Outlets whose slugs carry the quirks the crawler must survive; used whenever there is room.
SPECIAL_OUTLETS: tuple[tuple[str, str], ...] = (
    ("CaiXin", "财新"),
    ("21shijijingjibaodao", "21世纪经济报道"),
    ("xinhuawang(beijing)", "新华网(北京)"),
    ("xinhua she", "新华社"),
)

OUTLETS: tuple[tuple[str, str], ...] = (
    ("cailianshe", "财联社"),
    ("zhongguojijinbao", "中国基金报"),
    ("zhengquanshibao", "证券时报"),
    ("shanghaizhengquanbao", "上海证券报"),
    ("zhongguozhengquanbao", "中国证券报"),
    ("zhengquanribao", "证券日报"),
    ("jingjicankaobao", "经济参考报"),
    ("diyicaijing", "第一财经"),
    ("meirijingjixinwen", "每日经济新闻"),
    ("zhongguodianzibao", "中国电子报"),
    ("quanzhouwanbao", "泉州晚报"),
    ("pengpaixinwen", "澎湃新闻"),
    ("yangshixinwenkehuduan", "央视新闻客户端"),
    ("renminribao", "人民日报"),
    ("jingjiribao", "经济日报"),
    ("zhongxinjingwei", "中新经纬"),
    ("jiemianxinwen", "界面新闻"),
    ("huaxiashibao", "华夏时报"),
    ("xinlangcaijing", "新浪财经"),
    ("zhongguojingyingbao", "中国经营报"),
    ("beijingshangbao", "北京商报"),
    ("nanfangdushibao", "南方都市报"),
    ("xinjingbao", "新京报"),
    ("zhitongcaijing", "智通财经"),
    ("gelonghui", "格隆汇"),
    ("jinrongjie", "金融界"),
    ("zhongjinzaixian", "中金在线"),
    ("hexunwang", "和讯网"),
    ("36kr", "36氪"),
    ("guojijinrongbao", "国际金融报"),
    ("jinrongshibao", "金融时报"),
    ("zhongguoyinhangbaoxianbao", "中国银行保险报"),
    ("zhongguoqichebao", "中国汽车报"),
    ("zhongguonengyuanbao", "中国能源报"),
    ("kejiribao", "科技日报"),
    ("zhongguohuagongbao", "中国化工报"),
    ("nongminribao", "农民日报"),
    ("guangzhouribao", "广州日报"),
    ("shenzhenshangbao", "深圳商报"),
    ("hangzhouribao", "杭州日报"),
    ("chengdushangbao", "成都商报"),
    ("changjiangribao", "长江日报"),
    ("qianjiangwanbao", "钱江晚报"),
    ("xiandaikuaibao", "现代快报"),
    ("yangchengwanbao", "羊城晚报"),
    ("qiluwanbao", "齐鲁晚报"),
    ("dazhongribao", "大众日报"),
    ("hubeiribao", "湖北日报"),
    ("zhongguoxinwenwang", "中国新闻网"),
    ("huanqiushibao", "环球时报"),
    ("guangmingribao", "光明日报"),
    ("touzikuaibao", "投资快报"),
    ("WindZixun", "Wind资讯"),
    ("zhongxinwang(shanghai)", "中新网(上海)"),
    ("jingji guanchabao", "经济观察报"),
    ("licaizhoubao", "理财周报"),
    ("zhongguochanyejingjixinxiwang", "中国产业经济信息网"),
    ("anhuiribao", "安徽日报"),
)

# Extra outlets for sites with many categories: city x medium.
CITIES: tuple[tuple[str, str], ...] = _pairs(
    "beijing:北京 shanghai:上海 tianjin:天津 "
    "chongqing:重庆 nanjing:南京 suzhou:苏州 wuxi:无锡 "
    "ningbo:宁波 wenzhou:温州 hefei:合肥 fuzhou:福州 "
    "xiamen:厦门 jinan:济南 qingdao:青岛 zhengzhou:郑州 "
    "wuhan:武汉 changsha:长沙 nanchang:南昌 xian:西安 "
    "lanzhou:兰州 kunming:昆明 guiyang:贵阳 nanning:南宁 "
    "haikou:海口 shenyang:沈阳 dalian:大连 changchun:长春 "
    "haerbin:哈尔滨 taiyuan:太原 shijiazhuang:石家庄 "
    "huhehaote:呼和浩特 yinchuan:银川 xining:西宁 "
    "wulumuqi:乌鲁木齐 lasa:拉萨 foshan:佛山 dongguan:东莞 "
    "zhuhai:珠海 shantou:汕头 yantai:烟台 "
)
MEDIA_KINDS: tuple[tuple[str, str], ...] = _pairs(
    "ribao:日报 wanbao:晚报 shangbao:商报 chenbao:晨报 "
    "dushibao:都市报 xinwenwang:新闻网 caijing:财经 "
    "jingjibao:经济报 guangbodianshitai:广播电视台 "
    "fabu:发布 "
)

EMNEWS_SLUG = "emnews"
EMNEWS_TAG = "东财滚动新闻"

# (name, market prefix, code): market 1 = Shanghai, 0 = Shenzhen, 116 = HK, 105/106 = US.
STOCKS: tuple[tuple[str, str, str], ...] = _triples(
    "贵州茅台:1:600519 宁德时代:0:300750 比亚迪:0:002594 "
    "招商银行:1:600036 中国平安:1:601318 隆基绿能:1:601012 "
    "五粮液:0:000858 美的集团:0:000333 迈瑞医疗:0:300760 "
    "东方财富:0:300059 中信证券:1:600030 海康威视:0:002415 "
    "立讯精密:0:002475 药明康德:1:603259 恒瑞医药:1:600276 "
    "紫金矿业:1:601899 长江电力:1:600900 中国中免:1:601888 "
    "三一重工:1:600031 格力电器:0:000651 京东方A:0:000725 "
    "工商银行:1:601398 兴业银行:1:601166 中芯国际:1:688981 "
    "金山办公:1:688111 阳光电源:0:300274 通威股份:1:600438 "
    "赣锋锂业:0:002460 北方华创:0:002371 汇川技术:0:300124 "
    "顺丰控股:0:002352 伊利股份:1:600887 海天味业:1:603288 "
    "山西汾酒:1:600809 泸州老窖:0:000568 爱尔眼科:0:300015 "
    "腾讯控股:116:00700 美团-W:116:03690 "
    "小米集团-W:116:01810 港交所:116:00388 苹果:105:AAPL "
    "特斯拉:105:TSLA 英伟达:105:NVDA 蔚来:106:NIO "
    "拼多多:105:PDD "
)

# (board name, BK code) for the "bk_" keytip spans and em_stock_key_common spans.
BOARDS: tuple[tuple[str, str], ...] = _pairs(
    "半导体:BK1036 消费电子:BK1037 证券:BK0473 银行:BK0475 "
    "保险:BK0474 光伏设备:BK1031 电池:BK1033 酿酒行业:BK0477 "
    "医疗器械:BK1041 汽车整车:BK1029 房地产开发:BK0451 "
    "煤炭行业:BK0437 有色金属:BK0478 航运港口:BK0450 "
    "软件开发:BK0737 储能:BK0989 芯片:BK0891 "
)

# (index name, quote id, Info id) for "infokey" spans.
INDICES: tuple[tuple[str, str, str], ...] = _triples(
    "上证指数:1.000001:3201 深证成指:0.399001:3202 "
    "创业板指:0.399006:3259 科创50:1.000688:3276 "
    "沪深300:1.000300:3208 "
)

ENGLISH_STOCKS: tuple[tuple[str, str], ...] = _pairs(
    "特斯拉:TSLA.O 英伟达:NVDA.O 苹果:AAPL.O "
    "阿里巴巴:09988.HK 腾讯控股:00700.HK 蔚来:NIO.N "
    "小鹏汽车:XPEV.N 京东:JD.O 网易:NTES.O 百度集团:09888.HK "
)
FOREIGN_FIRMS: tuple[tuple[str, str], ...] = (
    ("高盛", "Goldman Sachs"),
    ("摩根士丹利", "Morgan Stanley"),
    ("贝莱德", "BlackRock"),
    ("瑞银", "UBS"),
    ("花旗", "Citigroup"),
    ("野村证券", "Nomura"),
    ("桥水基金", "Bridgewater"),
)
PEOPLE: tuple[str, ...] = (
    "首席经济学家王涛",
    "首席策略分析师陈立",
    "宏观研究负责人刘洋",
    "基金经理赵晨",
    "行业分析师孙悦",
    "研究所所长周明",
    "资深投资顾问吴峰",
    "首席投资官Michael Chen",
    "亚太区主席David Lee",
)
BROKERS: tuple[str, ...] = _words(
    "中信证券 华泰证券 国泰君安 招商证券 中金公司 广发证券 兴业证券 海通证券 申万宏源 "
    "光大证券 国盛证券 东吴证券 "
)
ORGS: tuple[str, ...] = _words(
    "国家统计局 中国人民银行 证监会 国家发改委 工信部 财政部 商务部 银保监会 国家能源局 海关总署 "
)
REGIONS: tuple[str, ...] = _words(
    "浙江 广东 江苏 上海 北京 四川 湖北 山东 福建 安徽 深圳 成都 重庆 海南 天津 陕西 "
)
SECTORS: tuple[str, ...] = _words(
    "新能源汽车 光伏 储能 半导体 白酒 医药生物 券商 银行 保险 房地产 煤炭 有色金属 "
    "消费电子 人工智能 数字经济 航运 军工 农业 旅游酒店 工程机械 "
)
INDICATORS: tuple[str, ...] = _words(
    "社会消费品零售总额 规模以上工业增加值 固定资产投资 货物贸易进出口总值 "
    "居民消费价格指数 工业生产者出厂价格指数 新增人民币贷款 社会融资规模存量 "
)
COMMODITIES: tuple[str, ...] = _words("螺纹钢 铁矿石 沪铜 碳酸锂 焦煤 豆粕 原油 沪金 ")
FUND_HOUSES: tuple[str, ...] = _words("易方达基金 华夏基金 广发基金 南方基金 富国基金 汇添富 ")
TECHS: tuple[str, ...] = _words(
    "高端芯片 固态电池 工业软件 大模型 氢燃料电池 先进封装 智能驾驶 碳化硅功率器件 "
)
PROJECTS: tuple[str, ...] = _words(
    "年产10万吨正极材料 高端装备制造基地 数据中心 动力电池 光伏组件 生物医药产业园 智能工厂 "
)
VIEWS: tuple[str, ...] = (
    "稳增长政策持续发力，经济修复的斜率有望加快，权益资产的配置价值正在显现。",
    "流动性保持合理充裕，市场风险偏好有望逐步回升，结构性机会仍然较多。",
    "短期扰动因素尚未完全消除，但中长期向好的基本面没有改变。",
    "行业供需格局正在改善，龙头企业的议价能力将进一步增强。",
    "外部环境的不确定性仍然较大，建议投资者保持耐心，关注估值与业绩的匹配度。",
    "随着需求端逐步回暖，产业链各环节的盈利有望迎来修复。",
    "下半年消费复苏的确定性较高，可适当增配必需消费和服务消费。",
)
SUBHEADS: tuple[str, ...] = _words(
    "政策红利持续释放 机构：关注三条主线 业绩增长超预期 资金面保持宽松 产业链景气度回升 "
    "海外市场波动加剧 龙头公司优势凸显 风险提示 多地出台支持措施 估值处于历史低位 "
    "订单饱满产能扩张 行业集中度持续提升 "
)

# Sentences: every slot in braces is filled by replica.textgen. Kept free of Markdown syntax.
SENTENCES: tuple[str, ...] = (
    "{date}，{index}收涨{pct}，沪深两市成交额{amount}，较上一交易日{more_less}{amount}。",
    "{sector}板块表现活跃，{stock}、{stock}涨幅居前，{stock}跟涨。",
    "{org}{date}发布数据显示，{month}全国{indicator}同比增长{pct}，增速较上月{up_down}{pp}个百分点。",
    "{broker}研报指出，{sector}行业景气度有望持续回升，建议关注具备成本优势的龙头企业。",
    "{stock}公告称，公司{period}实现营业收入{amount}，同比增长{pct}；归母净利润{amount}，同比{up_down}{pct}。",
    "北向资金全天净{buy_sell}{amount}，其中沪股通净{buy_sell}{amount}，深股通净{buy_sell}{amount}。",
    "{region}近日出台{policy}，明确提出到{year}年{goal}。",
    "业内人士认为，随着{factor}，{sector}的需求将进一步释放，行业集中度有望继续提升。",
    "{foreign}在最新报告中表示，A股的估值已处于历史较低水平，中长期配置价值凸显。",
    "{stock}在投资者互动平台回复称，公司目前生产经营一切正常，各项业务有序推进。",
    "据{media}报道，{stock}拟投资{amount}建设{project}项目，预计{year}年建成投产。",
    "截至{date}收盘，{stock}报{price}元，总市值约{amount}。",
    "{person}表示，{view}",
    "从资金面看，{date}央行开展{amount}7天期逆回购操作，中标利率为{rate}%，当日实现净投放{amount}。",
    "统计显示，今年以来已有{count}家上市公司披露回购方案，拟回购金额合计超过{amount}。",
    "{english_stock}盘前涨超{pct}，此前公司公布的季度交付量好于市场预期。",
    "分析人士指出，短期市场或仍以震荡为主，投资者宜关注业绩确定性较高的细分领域。",
    "{region}统计局数据显示，{quarter}全省地区生产总值{amount}，按不变价格计算同比增长{pct}。",
    "{stock}表示，将继续加大研发投入，推动{tech}等关键技术攻关，提升核心竞争力。",
    "本轮调整中，{sector}板块累计跌幅超过{pct}，部分个股估值已回落至近五年低位。",
    "期货市场方面，{commodity}主力合约收涨{pct}，报{price}元/吨。",
    "{fund_house}旗下一只{sector}主题基金最新规模达{amount}，年内回报率为{pct}。",
    "汇率方面，在岸人民币对美元{date}收报{fx}，较上一交易日{up_down}{pips}个基点。",
    "{stock}相关负责人介绍，目前订单已排至{month}，产线处于满负荷运转状态。",
    "会议强调，要{policy_goal}，切实增强市场主体的获得感。",
    "有市场观点认为，{view}",
    "公司在公告中提示，上述事项尚存在不确定性，敬请广大投资者注意投资风险。",
    "{org}有关负责人在{date}的新闻发布会上表示，下一步将{policy_goal}。",
    "数据显示，{month}{sector}行业产量同比增长{pct}，出口金额达到{usd}。",
    "{index}全天震荡走高，{sector}、{sector}等板块领涨，{sector}板块小幅回调。",
    "截至{date}，{count}家{sector}上市公司中有超过{half}实现营业收入正增长。",
    "{broker}首席分析师认为，当前{sector}板块的配置性价比较高，可逢低布局。",
    "值得注意的是，{stock}近{count}个交易日累计获融资净买入{amount}。",
    "{foreign}将{year}年中国经济增速预期上调至{pct}，理由是{factor}。",
    "在{region}举行的{forum}上，多位嘉宾围绕{tech}的产业化前景展开讨论。",
    "{stock}同时披露，公司拟向全体股东每10股派发现金红利{dividend}元（含税）。",
    "受此消息影响，{stock}股价午后直线拉升，收盘报{price}元，涨幅为{pct}。",
    "记者了解到，{region}多家银行已下调首套房贷利率，最低降至{rate}%。",
    "{media}记者注意到，{sector}产业链上游原材料价格近期出现明显回落。",
    "业内预计，{year}年{sector}市场规模将突破{amount}，年均复合增长率超过{pct}。",
)

POLICIES: tuple[str, ...] = (
    "《关于加快推进数字经济高质量发展的实施意见》",
    "《促进消费持续恢复的若干措施》",
    "《新能源汽车产业发展行动方案》",
    "《支持中小微企业纾困发展的若干举措》",
    "《制造业数字化转型三年行动计划》",
)
GOALS: tuple[str, ...] = (
    "数字经济核心产业增加值占地区生产总值比重达到15%",
    "新能源汽车年产量突破100万辆",
    "规模以上工业企业研发投入强度提高到2.5%",
    "培育10家以上营业收入超百亿元的龙头企业",
    "建成5G基站超过10万个",
)
FACTORS: tuple[str, ...] = _words(
    "稳增长政策逐步落地 海外通胀压力有所缓解 国内消费需求持续回暖 产业链供应链加快恢复 "
    "基建投资保持较快增长 出口韧性超出预期 "
)
POLICY_GOALS: tuple[str, ...] = _words(
    "加大对实体经济的金融支持力度 进一步优化营商环境 保持流动性合理充裕 "
    "加快推进重大项目建设 稳定和扩大就业 推动外贸保稳提质 "
)
FORUMS: tuple[str, ...] = _words(
    "全球数字经济大会 新能源产业峰会 金融街论坛 陆家嘴论坛 中国汽车论坛 "
)

# Sentences for the rare shapes: raw "<" (safe in Markdown: "<" before a digit), text that
# shows "<...>" (written as &lt;...&gt; in HTML), and an ampersand.
LT_SENTENCES: tuple[str, ...] = (
    "该产品测量误差控制在<0.5%以内，达到国际先进水平。",
    "新一代模组的功耗降低约30%，待机电流<1mA，适用于可穿戴设备。",
    "公司表示，项目投产后单位能耗<0.8吨标准煤，优于行业平均水平。",
)
ANGLE_SENTENCES: tuple[str, ...] = (
    "公司同日披露了<2022年第一季度报告>及相关公告。",
    "董事会审议通过了<关于回购部分社会公众股份的议案>。",
    "交易所发出<关于对公司的问询函>，要求公司说明相关情况。",
)
AMP_SENTENCES: tuple[str, ...] = (
    "隔夜美股三大指数集体收涨，S&P 500指数涨1.2%，科技股普遍走强。",
    "美国电信运营商AT&T公布的季度营收略高于市场预期。",
)

TITLES: tuple[str, ...] = (
    "{stock}：{title_event}",
    "{sector}板块午后拉升 {stock}涨停",
    "{org}：{policy_goal}",
    "{region}{quarter}GDP同比增长{pct}",
    "北向资金净{buy_sell}{amount} 加仓{sector}板块",
    "{english_stock}涨超{pct}",
    "{broker}：{sector}行业有望迎来估值修复",
    "“稳增长”再加码 {sector}迎来新机遇",
    "A股三大指数集体收涨 创业板指涨超{pct}",
    "{stock}{period}净利同比增长{pct} 拟每10股派{dividend}元",
    "{foreign}：中国资产配置价值凸显",
    "{month}{indicator}同比增长{pct}",
    "{sector}产业链景气回升 机构看好三大方向",
    "央行开展{amount}逆回购操作",
    "{stock}拟投资{amount}建设{project}项目",
    "快讯：{stock}盘中涨超{pct}",
)
TITLE_EVENTS: tuple[str, ...] = _words(
    "公司生产经营一切正常 拟回购不超过5亿元股份 上半年业绩预增 控股股东增持计划实施完毕 "
    "签订重大合同 新产品通过认证 获得政府补助 拟分拆子公司上市 "
)
# Titles carrying characters a naive template would escape or choke on.
ODD_TITLES: tuple[str, ...] = (
    '"双碳"目标下{sector}加速转型 {stock}获机构调研',
    "{stock}资产负债率<60% 现金流持续改善",
    "S&P 500指数收涨{pct} 科技股领涨",
    "{stock}回应“<关于问询函的回复>”相关问题",
    "AT&T季度营收超预期 盘后涨{pct}",
    "'专精特新'企业融资规模创新高",
)
SPLITTABLE_SOURCES: tuple[str, ...] = ("上海证券报", "中国证券报", "中国银行保险报")
EMNEWS_SOURCES: tuple[str, ...] = _words(
    "财联社 证券时报 上海证券报 中国证券报 证券日报 央视新闻客户端 第一财经 "
    "每日经济新闻 中国基金报 新华社 人民网 经济日报 澎湃新闻 界面新闻 "
)
